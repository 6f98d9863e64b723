"""The circuit breaker in front of a destination, kept in PostgreSQL so every worker and the CLI see one state.

CLOSED: events are delivered, and every answer is counted in a sliding window of
`window_seconds`. The breaker OPENs when (nearly) every answer is a failure of the destination (no
answer, 5xx, 429..., or a refusal, 4xx: a destination that refuses everyone is as down as one that
answers no one): at least `failure_ratio` of the window's answers, and at least `failures_to_open`
failures since the destination last accepted an event. A partial failure (20 % 503) never comes near
the ratio, however many failures come in a row. While OPEN, claims stop,
attempts are HELD (the events keep their budgets) and one probe at a time, across all workers,
tests the destination every `probe_every_seconds`, and never before the longest Retry-After the
destination asked for while it failed. Only the probe's answer closes it: a late answer to a request
sent before it opened never does. The close asks for a drain: every event waiting out a backoff
becomes due, in bounded batches (`drain_backlog`), apart from those a Retry-After keeps waiting.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.tables import relay_breakers


@dataclass(frozen=True)
class BreakerRule:
    """When the breaker opens, how often it probes while open, and how large a drain's statements are."""

    failures_to_open: int
    probe_every_seconds: float
    window_seconds: float = 1.0
    failure_ratio: float = 0.9
    retry_after_cap_seconds: float = 300.0
    drain_batch: int = 5000


@dataclass(frozen=True)
class PlatformAnswer:
    """What the breaker needs of one answer: did the destination fail (or refuse) it, when was it sent, what it
    asked."""

    failed: bool
    sent_at: datetime
    retry_after_seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Window:
    """The breaker's sliding window: the answers of the current and of the previous `window_seconds`."""

    started_at: datetime | None = None
    answers: int = 0
    failures: int = 0
    previous_answers: int = 0
    previous_failures: int = 0

    def rolled(self, now: datetime, seconds: float) -> "Window":
        """The window as it stands at `now`: a slice older than two windows is forgotten, one older than one is
        the previous slice."""
        length = timedelta(seconds=seconds)
        if self.started_at is None or now - self.started_at >= 2 * length:
            return Window(now)
        if now - self.started_at >= length:
            return Window(self.started_at + length, 0, 0, self.answers, self.failures)
        return self

    def counted(self, answers: int, failures: int) -> "Window":
        return replace(self, answers=self.answers + answers, failures=self.failures + failures)

    def estimate(self, now: datetime, seconds: float) -> tuple[float, float]:
        """Answers and failures over the last `seconds`: the current slice, and the previous one in proportion
        (the usual sliding-window counter)."""
        elapsed = (now - self.started_at).total_seconds() if self.started_at else seconds
        weight = max(0.0, 1.0 - elapsed / seconds)
        return (
            self.answers + self.previous_answers * weight,
            self.failures + self.previous_failures * weight,
        )

    def fails_for_everyone(self, now: datetime, rule: BreakerRule, failures_in_a_row: int) -> bool:
        """(Nearly) every answer of the window a failure, and enough failures since the last accepted answer to tell
        (counted across windows, so that an outage at a trickle of events opens it too)."""
        answers, failures = self.estimate(now, rule.window_seconds)
        return failures_in_a_row >= rule.failures_to_open and failures >= rule.failure_ratio * answers > 0


@dataclass(frozen=True)
class Breaker:
    """A destination's breaker as stored."""

    destination: str
    state: str
    failures_in_a_row: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_failure: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None
    open_seconds_total: float
    drain_before: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"

    @property
    def draining(self) -> bool:
        """The breaker closed and events in backoff are still to be made due (`drain_backlog`)."""
        return not self.is_open and self.drain_before is not None

    def open_seconds(self, now: datetime) -> float:
        """How long, in all, the breaker has been open until `now` (subtract two readings for a span of time)."""
        current = (now - self.opened_at).total_seconds() if self.is_open and self.opened_at else 0.0
        return self.open_seconds_total + max(0.0, current)

    def describe(self) -> str:
        """The state in words, for logs, the CLI and the Web UI."""
        if not self.is_open:
            failing = f" ({self.failures_in_a_row} failures since the last delivery)" if self.failures_in_a_row else ""
            return f"breaker CLOSED: delivering to {self.destination}{failing}"
        since = self.opened_at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.opened_at else "?"
        return (
            f"breaker OPEN since {since}: {self.destination} failed for every event "
            f"({self.failures_in_a_row} failures since the last delivery, last: {self.last_failure or '?'}); "
            "deliveries held, one probe at a time"
        )


@dataclass(frozen=True)
class BreakerChange:
    """The breaker after answers were noted.

    `closed_now` when these answers closed it (then run `drain_backlog`), `opened_now` when they opened it.
    `accepted_sent_at`: the latest time at which a request was sent that the destination accepted, across workers:
    a refusal of a request sent earlier is the event's own (`confirmed_refusals`).
    """

    state: str
    closed_now: bool
    opened_now: bool
    accepted_sent_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"


_ENSURE = text("INSERT INTO relay_breakers (destination) VALUES (:destination) ON CONFLICT (destination) DO NOTHING")

# The row lock orders concurrent notes: counts add up and exactly one note sees the breaker close.
_READ_FOR_NOTE = text(
    """
    SELECT state, failures_in_a_row, opened_at, next_probe_at, probe_token, window_started_at, window_answers,
           window_failures, previous_answers, previous_failures, accepted_sent_at, retry_after_until,
           open_seconds_total, now() AS now
    FROM relay_breakers WHERE destination = :destination FOR UPDATE
    """
)

_WRITE_NOTE = text(
    """
    UPDATE relay_breakers SET
        state = :state, failures_in_a_row = :failures_in_a_row, opened_at = :opened_at,
        next_probe_at = :next_probe_at,
        probe_token = CASE WHEN :release_probe THEN NULL ELSE probe_token END,
        probe_expires_at = CASE WHEN :release_probe THEN NULL ELSE probe_expires_at END,
        window_started_at = :window_started_at, window_answers = :window_answers, window_failures = :window_failures,
        previous_answers = :previous_answers, previous_failures = :previous_failures,
        accepted_sent_at = :accepted_sent_at, retry_after_until = :retry_after_until,
        open_seconds_total = :open_seconds_total,
        drain_before = CASE WHEN :closed_now THEN now() ELSE drain_before END,
        last_failure = coalesce(:last_failure, last_failure),
        last_failure_at = CASE WHEN :last_failure IS NULL THEN last_failure_at ELSE now() END,
        last_success_at = CASE WHEN :accepted THEN now() ELSE last_success_at END,
        updated_at = now()
    WHERE destination = :destination
    """
)

# The common case in one statement: only accepted answers, on a closed breaker (they cannot open it)
# within the window's current slice (no row lock held across round trips). It matches nothing when the
# window must roll.
_NOTE_HEALTHY = text(
    """
    UPDATE relay_breakers SET
        window_answers = window_answers + :answers, failures_in_a_row = 0,
        accepted_sent_at = greatest(accepted_sent_at, :accepted_sent_at),
        last_success_at = now(), updated_at = now()
    WHERE destination = :destination AND state = 'CLOSED'
      AND window_started_at > now() - make_interval(secs => :window)
    RETURNING accepted_sent_at
    """
)

_TAKE_PROBE = text(
    """
    UPDATE relay_breakers SET probe_token = :token, probe_expires_at = now() + make_interval(secs => :hold)
    WHERE destination = :destination AND state = 'OPEN' AND coalesce(next_probe_at, now()) <= now()
      AND (probe_token IS NULL OR probe_expires_at < now())
    RETURNING destination
    """
)

_RELEASE_PROBE = text(
    """
    UPDATE relay_breakers
    SET probe_token = NULL, probe_expires_at = NULL,
        next_probe_at = greatest(now() + make_interval(secs => :probe_every), retry_after_until)
    WHERE destination = :destination AND probe_token = :token
    """
)

# One bounded step of the drain: events waiting out a backoff become due as of the close, those a
# Retry-After still holds excepted. SKIP LOCKED: two workers draining share the work, and never wait.
_DRAIN_STEP = text(
    """
    WITH breaker AS (
        SELECT drain_before FROM relay_breakers
        WHERE destination = :destination AND state = 'CLOSED' AND drain_before IS NOT NULL
    ), batch AS (
        SELECT delivery.id FROM event_deliveries AS delivery, breaker
        WHERE delivery.destination = :destination AND delivery.status = 'PENDING'
          AND delivery.next_attempt_at > greatest(breaker.drain_before, now())
          AND (delivery.not_before IS NULL OR delivery.not_before <= now())
        ORDER BY delivery.next_attempt_at, delivery.id
        LIMIT :batch
        FOR UPDATE OF delivery SKIP LOCKED
    ), moved AS (
        UPDATE event_deliveries AS delivery SET next_attempt_at = breaker.drain_before
        FROM batch, breaker WHERE delivery.destination = :destination AND delivery.id = batch.id
        RETURNING delivery.id
    )
    SELECT (SELECT drain_before FROM breaker) AS drain_before, (SELECT count(*) FROM moved) AS moved
    """
)

_DRAIN_DONE = text(
    "UPDATE relay_breakers SET drain_before = NULL WHERE destination = :destination AND drain_before = :drain_before"
)

_COLUMNS = [relay_breakers.c[name] for name in Breaker.__dataclass_fields__]


async def ensure_breaker(engine: AsyncEngine, destination: str) -> None:
    """Create the destination's breaker, CLOSED, unless it exists."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(_ENSURE, {"destination": destination})


async def note_answers(
    engine: AsyncEngine,
    destination: str,
    rule: BreakerRule,
    answers: list[PlatformAnswer],
    *,
    probe_token: uuid.UUID | None = None,
) -> BreakerChange:
    """Count answers in the breaker's window, open or close it; the new state. `probe_token`: these answers
    include the probe's (its claim held the breaker's probe slot under this token)."""
    if answers and probe_token is None and not any(answer.failed for answer in answers):
        return await note_accepted(engine, destination, rule, len(answers), max(answer.sent_at for answer in answers))
    return await _note_locked(engine, destination, rule, answers, probe_token)


async def note_accepted(
    engine: AsyncEngine, destination: str, rule: BreakerRule, answers: int, accepted_sent_at: datetime
) -> BreakerChange:
    """Count `answers` accepted answers (no probe's), the latest sent at `accepted_sent_at`: one statement while
    the breaker is closed and its window's slice current, else the locked note."""
    async with autocommit_connection(engine) as connection:
        healthy = await connection.execute(
            _NOTE_HEALTHY,
            {
                "destination": destination,
                "answers": answers,
                "accepted_sent_at": accepted_sent_at,
                "window": rule.window_seconds,
            },
        )
        if (row := healthy.first()) is not None:
            return BreakerChange("CLOSED", closed_now=False, opened_now=False, accepted_sent_at=row.accepted_sent_at)
    return await _note_locked(engine, destination, rule, [PlatformAnswer(False, accepted_sent_at)] * answers, None)


async def _note_locked(
    engine: AsyncEngine,
    destination: str,
    rule: BreakerRule,
    answers: list[PlatformAnswer],
    probe_token: uuid.UUID | None,
) -> BreakerChange:
    async with engine.begin() as connection:
        row = (await connection.execute(_READ_FOR_NOTE, {"destination": destination})).one()
        note = _judge(row, rule, answers, probe_token)
        await connection.execute(_WRITE_NOTE, {"destination": destination, **note.columns})
    return note.change


@dataclass(frozen=True)
class _Note:
    change: BreakerChange
    columns: dict


def _judge(row, rule: BreakerRule, answers: list[PlatformAnswer], probe_token: uuid.UUID | None) -> _Note:
    """The breaker's new state after `answers`, from its stored row: a pure function of both."""
    now = row.now
    failures = [answer for answer in answers if answer.failed]
    accepted = [answer for answer in answers if not answer.failed]
    window = Window(
        row.window_started_at, row.window_answers, row.window_failures, row.previous_answers, row.previous_failures
    )
    window = window.rolled(now, rule.window_seconds).counted(len(answers), len(failures))
    accepted_sent_at = max(
        [answer.sent_at for answer in accepted] + ([row.accepted_sent_at] if row.accepted_sent_at else []),
        default=None,
    )
    asked = [answer.retry_after_seconds for answer in failures if answer.retry_after_seconds is not None]
    retry_after_until = row.retry_after_until
    if asked:
        asked_until = now + timedelta(seconds=min(max(asked), rule.retry_after_cap_seconds))
        retry_after_until = max(asked_until, retry_after_until or asked_until)
    failures_in_a_row = 0 if accepted else row.failures_in_a_row + len(failures)
    state, opened_at, next_probe_at = row.state, row.opened_at, row.next_probe_at
    open_seconds_total = row.open_seconds_total
    is_probe = probe_token is not None and row.probe_token == probe_token
    closed_now = opened_now = False
    if state == "CLOSED" and window.fails_for_everyone(now, rule, failures_in_a_row):
        state, opened_at, opened_now = "OPEN", now, True
        next_probe_at = _next_probe(now, rule, retry_after_until)
    elif state == "OPEN" and is_probe and accepted:  # only the probe's answer tells that the destination is back
        state, closed_now, next_probe_at = "CLOSED", True, None
        open_seconds_total += (now - opened_at).total_seconds() if opened_at else 0.0
        opened_at, retry_after_until, window = None, None, Window(now)
    elif state == "OPEN" and is_probe:
        next_probe_at = _next_probe(now, rule, retry_after_until)
    if state == "CLOSED" and not window.failures and not window.previous_failures:
        retry_after_until = None  # a Retry-After of an earlier trouble does not hold back a later probe
    last_failure = failures[-1].error if failures else None
    return _Note(
        BreakerChange(state, closed_now, opened_now, accepted_sent_at),
        {
            "state": state,
            "failures_in_a_row": failures_in_a_row,
            "opened_at": opened_at,
            "next_probe_at": next_probe_at,
            "release_probe": is_probe,
            "window_started_at": window.started_at,
            "window_answers": window.answers,
            "window_failures": window.failures,
            "previous_answers": window.previous_answers,
            "previous_failures": window.previous_failures,
            "accepted_sent_at": accepted_sent_at,
            "retry_after_until": retry_after_until,
            "open_seconds_total": open_seconds_total,
            "closed_now": closed_now,
            "last_failure": last_failure or ("(no message)" if failures else None),
            "accepted": bool(accepted),
        },
    )


def _next_probe(now: datetime, rule: BreakerRule, retry_after_until: datetime | None) -> datetime:
    """The probe interval from now, and never before the longest Retry-After the destination asked for."""
    interval = now + timedelta(seconds=rule.probe_every_seconds)
    return max(interval, retry_after_until) if retry_after_until else interval


async def take_probe(engine: AsyncEngine, destination: str, token: uuid.UUID, hold_seconds: float) -> bool:
    """Become the one prober of an open breaker whose next probe is due; False if not open, not due or taken."""
    async with autocommit_connection(engine) as connection:
        taken = await connection.execute(
            _TAKE_PROBE, {"destination": destination, "token": token, "hold": hold_seconds}
        )
        return taken.first() is not None


async def release_probe(engine: AsyncEngine, destination: str, token: uuid.UUID, rule: BreakerRule) -> None:
    """Give up a probe that found nothing to send: the next one is due after the probe interval."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(
            _RELEASE_PROBE, {"destination": destination, "token": token, "probe_every": rule.probe_every_seconds}
        )


async def drain_backlog(engine: AsyncEngine, destination: str, rule: BreakerRule) -> int:
    """After the breaker closed: make every event waiting out a backoff due, `rule.drain_batch` events per
    statement (each well within the statement timeout), apart from events a Retry-After still holds; how many.

    Run it beside deliveries (a task of its own), never in their way; several workers may run it at once."""
    drained = 0
    while True:
        async with autocommit_connection(engine) as connection:
            step = (
                await connection.execute(_DRAIN_STEP, {"destination": destination, "batch": rule.drain_batch})
            ).one()
            if step.drain_before is None:
                return drained
            drained += step.moved
            if step.moved < rule.drain_batch:
                await connection.execute(_DRAIN_DONE, {"destination": destination, "drain_before": step.drain_before})
                return drained


async def breaker_of(engine: AsyncEngine, destination: str) -> Breaker | None:
    """The destination's breaker, if it has one."""
    async with autocommit_connection(engine) as connection:
        row = (await connection.execute(select(*_COLUMNS).where(relay_breakers.c.destination == destination))).first()
    return None if row is None else Breaker(**row._mapping)


async def all_breakers(engine: AsyncEngine) -> list[Breaker]:
    """Every destination's breaker, by destination."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(select(*_COLUMNS).order_by(relay_breakers.c.destination))
        return [Breaker(**row._mapping) for row in rows]
