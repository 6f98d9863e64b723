"""The plain data the relay workflow and its activities exchange (and the Web UI shows).

Typed dataclasses, kept small: an activity reports counts, and names only the events that had a
problem (retried, held, failed...). Every attempt, SENT ones included, is in PostgreSQL
(`delivery_attempts`, with the run's id), which is where `events show` and `GET /events/{id}` read it.
"""

from dataclasses import dataclass, field


@dataclass
class RelayRun:
    """A relay run's settings: the schedule's argument (JSON, shown by `temporal schedule describe`).

    Built from Settings only (`sneaker_orders/system_schedules.py`). A run relays for about
    `run_seconds` (ending just before a tick of the schedule, every `interval_seconds`), in up to
    `lanes` activities at once, each keeping about `batch_size` requests in flight. It continues as
    new only when its history grows long; a continued run keeps the chain's `stop_by`, and opens all
    its lanes at once if its predecessor was working on a `backlog`.
    """

    interval_seconds: float
    batch_size: int
    lanes: int
    run_seconds: float
    schedule_id: str | None = None  # None: started by hand, not by the schedule
    stop_by: str | None = None
    continued: int = 0
    backlog: bool = False


@dataclass
class RelayBatch:
    """One activity's work: keep about `batch_size` due events in flight, for lane `lane` of the run.

    It looks for due events for up to `wait_seconds`, and reports back once it has delivered for
    `report_after_seconds`, when paused, or when the breaker is no longer as the run shows it.
    """

    batch_size: int
    wait_seconds: float
    report_after_seconds: float
    schedule_id: str | None = None  # None: started by hand, not by the schedule
    lane: int = 1
    breaker_shown: str = "CLOSED"


@dataclass
class EventProblem:
    """An attempt that did not end SENT: which event of which order, how it ended, and why, in words."""

    event_id: str
    order_id: str
    outcome: str
    http_status: int | None
    what: str


@dataclass
class RelayBatchReport:
    """What one activity did: attempts by outcome, the attempts that had a problem, the platform and the outbox.

    `outcomes` counts attempts by outcome as logged (`SENT`, `RETRY`, `HELD`, `FAILED`, `STALE`,
    `LEASE_EXPIRED`); `problems` names every attempt that did not end SENT. `breaker_open_seconds`
    is how long this activity saw the breaker open; `backlog_events` and `oldest_waiting_seconds`
    describe the outbox when it last looked (-1: not looked). `heartbeats` are the heartbeats it
    asked for (Temporal records at most that many).
    """

    outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[EventProblem] = field(default_factory=list)
    breaker: str = "CLOSED"
    breaker_detail: str = ""
    breaker_open_seconds: float = 0.0
    paused: bool = False
    backlog: bool = False
    backlog_events: int = -1
    oldest_waiting_seconds: float = -1.0
    heartbeats: int = 0


@dataclass
class RelayReport:
    """What a run did: attempts by outcome, the events with a problem (named or not), the platform and the outbox."""

    outcomes: dict[str, int] = field(default_factory=dict)
    failed_events: dict[str, str] = field(default_factory=dict)
    problem_events: int = 0
    names_left_out: list[str] = field(default_factory=list)
    names_left_out_count: int = 0
    breaker_open_seconds: float = 0.0
    backlog_events: int = -1
    oldest_waiting_seconds: float = -1.0
    activities: int = 0
    heartbeats: int = 0
    ended: str = ""

    @property
    def sent(self) -> int:
        return self.outcomes.get("SENT", 0)
