"""The plain data the relay workflow and its activities exchange (and the Web UI shows).

Kept flat (strings keyed by event id) on purpose: a batch of 100 nested objects costs the worker
more to convert than to deliver, and these values are for people reading the Web UI.
"""

from dataclasses import dataclass, field


@dataclass
class RelayRun:
    """A relay run's settings: the schedule's argument (JSON, shown by `temporal schedule describe`).

    A run relays for about `run_seconds` (ending just before a tick of the schedule, every
    `interval_seconds`), in up to `lanes` parallel loops of `batch_size` claims. It names every
    event it attempts in its search attributes, within the server's limits given here, and
    continues as new when more names would not fit; a continued run keeps the chain's `stop_by`,
    and opens all its lanes at once if its predecessor was working on a `backlog`.
    """

    interval_seconds: float
    batch_size: int
    lanes: int
    run_seconds: float = 60.0
    schedule_id: str | None = None
    search_attribute_value_limit_bytes: int = 2048
    search_attributes_total_limit_bytes: int = 40 * 1024
    stop_by: str | None = None
    continued: int = 0
    backlog: bool = False


@dataclass
class RelayBatch:
    """One activity's work: claim and deliver due events, at most `max_events` (what the run can still name).

    It looks for due events for up to `wait_seconds`, and reports back once it has delivered for
    `report_after_seconds`, when paused, or when the breaker is no longer as the run shows it.
    """

    max_events: int
    batch_size: int
    wait_seconds: float
    report_after_seconds: float = 1.0
    schedule_id: str | None = None
    breaker_shown: str = "CLOSED"


@dataclass
class RelayBatchReport:
    """What one activity did: one line per attempt, in the order they were recorded.

    Each line reads `<event id> <order id> <outcome> <HTTP status or -> <what, and the error>`, e.g.
    `3f2a... 42 FAILED 422 OrderCreated #1 of order 42: HTTP 422: ...`; a SENT line ends after the
    status. One string rather than a dict per event: a report of a thousand attempts costs the
    worker next to nothing to convert, and reads the same in the Web UI.
    """

    attempts: str = ""
    breaker: str = "CLOSED"
    breaker_detail: str = ""
    paused: bool = False
    backlog: bool = False
    slowest_batch_seconds: float = 0.0


@dataclass
class RelayReport:
    """What a run did: how many events it sent, retried and failed, the failed ones named, every event's outcome."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    failed_events: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    activities: int = 0
    ended: str = ""
