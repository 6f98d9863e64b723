"""The plain data the relay workflow and its activities exchange (and the Web UI shows)."""

from dataclasses import dataclass, field


@dataclass
class ClaimRequest:
    """Claim up to `batch_size` due events, waiting up to `wait_seconds` for some to become due."""

    batch_size: int
    wait_seconds: float


@dataclass
class ClaimedEventRef:
    """An event claimed for delivery, as the workflow sees it."""

    event_id: str
    order_id: str
    sequence: int
    event_type: str
    attempt: int


@dataclass
class ClaimedBatch:
    """Events claimed under one lease."""

    lease_token: str
    events: list[ClaimedEventRef] = field(default_factory=list)


@dataclass
class EventOutcome:
    """How one attempt ended: SENT, RETRY (back to PENDING), FAILED, or STALE (lease lost, not applied)."""

    event_id: str
    order_id: str
    sequence: int
    event_type: str
    attempt: int
    outcome: str
    http_status: int | None = None
    error: str | None = None


@dataclass
class DeliveryReport:
    """Every attempt of a batch with its outcome."""

    outcomes: list[EventOutcome] = field(default_factory=list)


@dataclass
class RelayRun:
    """One scheduled run: relay for `window_seconds` from its scheduled time, in `lanes` parallel loops."""

    window_seconds: float
    batch_size: int
    lanes: int
    max_events: int = 5000


@dataclass
class RelayReport:
    """What a run did: every event it handled with the outcome of its attempt."""

    batches: int = 0
    events: list[EventOutcome] = field(default_factory=list)
