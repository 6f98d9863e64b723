"""The plain data the relay workflow and its activities exchange (and the Web UI shows).

Kept flat (strings keyed by event id) on purpose: a batch of 100 nested objects costs the worker
more to convert than to deliver, and these values are for people reading the Web UI.
"""

from dataclasses import dataclass, field


@dataclass
class ClaimRequest:
    """Claim up to `batch_size` due events, waiting up to `wait_seconds` for some to become due."""

    batch_size: int
    wait_seconds: float
    release_expired_leases: bool = False


@dataclass
class ClaimedBatch:
    """Events claimed under one lease: `events` maps each event id to what it is ("OrderCreated #1 of order 42")."""

    lease_token: str
    events: dict[str, str] = field(default_factory=dict)


@dataclass
class DeliveryReport:
    """How each attempt of a batch ended, by event id: "SENT 201", "RETRY 503 ...", "FAILED 422 ...", "STALE ..."."""

    outcomes: dict[str, str] = field(default_factory=dict)


@dataclass
class RelayRun:
    """One scheduled run: relay in `lanes` parallel loops until just before the schedule's next tick."""

    interval_seconds: float
    batch_size: int
    lanes: int
    max_events: int = 5000


@dataclass
class RelayReport:
    """What a run did: every event it handled, with the outcome of its attempt."""

    batches: int = 0
    events: dict[str, str] = field(default_factory=dict)
