"""The plain data the relay workflow and its activities exchange (and the Web UI shows).

Typed dataclasses, kept small: an activity reports counts, and names only the events that had a
problem (retried, held, failed...). Every attempt, SENT ones included, is in PostgreSQL
(`delivery_attempts`, with the run's id), which is where `events show` and `GET /events/{id}` read it.
"""

from dataclasses import dataclass, field

from sneaker_orders.destinations import DEFAULT_DESTINATION


@dataclass
class RelayRun:
    """A relay run's settings: the schedule's argument (JSON, shown by `temporal schedule describe`).

    Built from Settings only (`workflows/system_schedules.py`). A run relays to each of `destinations` for
    about `run_seconds` (ending just before a tick of the schedule, every `interval_seconds`), in up to
    `lanes` activities at once per destination, each keeping about `batch_size` requests in flight. It continues as
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
    destinations: list[str] = field(default_factory=lambda: [DEFAULT_DESTINATION])


@dataclass
class RelayBatch:
    """One activity's work: keep about `batch_size` of `destination`'s due events in flight, for its lane `lane`.

    It looks for due events for up to `wait_seconds`, and reports back once it has delivered for
    `report_after_seconds`, when paused, or when the breaker is no longer as the run shows it.
    """

    batch_size: int
    wait_seconds: float
    report_after_seconds: float
    schedule_id: str | None = None  # None: started by hand, not by the schedule
    lane: int = 1
    breaker_shown: str = "CLOSED"
    destination: str = DEFAULT_DESTINATION


@dataclass
class EventProblem:
    """An attempt that did not end SENT: which event of which order, at which destination, how it ended, and why."""

    event_id: str
    order_id: str
    outcome: str
    http_status: int | None
    what: str
    destination: str = DEFAULT_DESTINATION


@dataclass
class RelayBatchReport:
    """What one activity did at its destination: attempts by outcome, the attempts that had a problem, the
    destination's breaker and what waits for it.

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
    destination: str = DEFAULT_DESTINATION
    # Every destination the worker that ran the activity delivers to: a run started before a destination was
    # added opens lanes for it at once, rather than leaving it to the next run.
    worker_destinations: list[str] = field(default_factory=list)
    # False: the worker does not deliver to `destination` (taken out of DESTINATIONS_FILE): the lane ends.
    delivered_here: bool = True


@dataclass
class DestinationStory:
    """What a run did at one destination: attempts by outcome, its breaker, and what waits for it."""

    outcomes: dict[str, int] = field(default_factory=dict)
    breaker: str = "CLOSED"
    breaker_detail: str = ""
    breaker_open_seconds: float = 0.0
    backlog_events: int = -1
    oldest_waiting_seconds: float = -1.0


@dataclass
class RelayReport:
    """What a run did: attempts by outcome (in all, and per destination in `destinations`), the events with a problem
    (named or not), the breakers and the outbox."""

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
    destinations: dict[str, DestinationStory] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.outcomes.get("SENT", 0)
