"""What operators read of the outbox: list events, look at one with its attempts and the actions taken on it.

The actions themselves (redrive, retry-now, replay, discard) are in `db/outbox/operator_actions.py`.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.errors import DomainError
from db.tables import delivery_attempts, event_deliveries, operator_actions, order_events


class OutboxError(DomainError):
    """Base of the errors operators get from the outbox."""

    code = "OUTBOX_ERROR"


class EventNotFound(OutboxError):
    """No event has this event_id."""

    code = "EVENT_NOT_FOUND"


class EventNotFailed(OutboxError):
    """Only a FAILED event can be redriven or discarded."""

    code = "EVENT_NOT_FAILED"


class EventNotPending(OutboxError):
    """Only a PENDING event can have its next attempt pulled to now."""

    code = "EVENT_NOT_PENDING"


class AmbiguousEventId(OutboxError):
    """An event-id prefix that more than one event starts with."""

    code = "AMBIGUOUS_EVENT_ID"

    @classmethod
    def of(cls, prefix: str, candidates: list[str]) -> "AmbiguousEventId":
        """The error for `prefix`, naming (up to CANDIDATES_SHOWN of) the events it could mean."""
        many = len(candidates) > CANDIDATES_SHOWN
        count = f"more than {CANDIDATES_SHOWN}" if many else str(len(candidates))
        listed = "\n  ".join(candidates[:CANDIDATES_SHOWN]) + ("\n  ..." if many else "")
        return cls(f"{count} events start with {prefix!r}; give more of the id:\n  {listed}")


# An ambiguous prefix names at most this many of the events it matches.
CANDIDATES_SHOWN = 10


@dataclass(frozen=True)
class EventSummary:
    """An outbox row as operators list it."""

    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    status: str
    retry_count: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as logged, with the Temporal run that made it."""

    attempt_number: int
    attempted_at: datetime
    outcome: str
    http_status: int | None
    error: str | None
    duration_ms: float | None
    workflow_id: str | None
    run_id: str | None


@dataclass(frozen=True)
class OperatorAction:
    """An operator's action on the event, and what the event was before it."""

    action: str
    requested_at: datetime
    requested_by: str
    status_before: str
    retry_count_before: int
    last_error_before: str | None
    details: dict | None


@dataclass(frozen=True)
class Redrive:
    """An operator's redrive of the event (the REDRIVE actions, as `redrives` has always shown them)."""

    redriven_at: datetime
    requested_by: str
    retry_count_before: int
    last_error_before: str | None


@dataclass(frozen=True)
class EventDetail:
    """One event with its payload, every attempt and every operator action."""

    event: EventSummary
    payload: dict
    attempts: list[Attempt]
    actions: list[OperatorAction]

    @property
    def redrives(self) -> list[Redrive]:
        return [
            Redrive(action.requested_at, action.requested_by, action.retry_count_before, action.last_error_before)
            for action in self.actions
            if action.action == "REDRIVE"
        ]


_EVENT_AND_DELIVERY = order_events.join(event_deliveries, event_deliveries.c.id == order_events.c.id)
_SUMMARY_COLUMNS = [
    (order_events.c[field] if field in order_events.c else event_deliveries.c[field])
    for field in EventSummary.__dataclass_fields__
]
_ATTEMPTS = (
    select(*(delivery_attempts.c[field] for field in Attempt.__dataclass_fields__))
    .where(delivery_attempts.c.event_id == bindparam("event_id"))
    .order_by(delivery_attempts.c.attempt_number, delivery_attempts.c.id)
)
_ACTIONS = (
    select(*(operator_actions.c[field] for field in OperatorAction.__dataclass_fields__))
    .where(operator_actions.c.event_id == bindparam("event_id"))
    .order_by(operator_actions.c.id)
)
_DISCARDED = (
    select(operator_actions.c.requested_at, operator_actions.c.requested_by)
    .where(operator_actions.c.event_id == bindparam("event_id"), operator_actions.c.action == "DISCARD")
    .order_by(operator_actions.c.id.desc())
    .limit(1)
)
# Event ids sort as their hex digits do, so the events starting with a prefix are one index range.
_STARTING_WITH = (
    select(order_events.c.event_id)
    .where(order_events.c.event_id.between(bindparam("lowest"), bindparam("highest")))
    .order_by(order_events.c.event_id)
    .limit(CANDIDATES_SHOWN + 1)
)
_HEX_DIGITS = re.compile(r"^[0-9a-f]{1,32}$")


def _summary(row) -> EventSummary:
    fields = {name: row._mapping[name] for name in EventSummary.__dataclass_fields__}
    return EventSummary(**{**fields, "event_id": str(row.event_id)})


async def list_events(
    engine: AsyncEngine, *, status: str | None = None, order_id: int | None = None, limit: int = 50
) -> list[EventSummary]:
    """Events newest first, optionally of one status and/or one order."""
    query = select(*_SUMMARY_COLUMNS).select_from(_EVENT_AND_DELIVERY).order_by(order_events.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(event_deliveries.c.status == status)
    if order_id is not None:
        query = query.where(order_events.c.aggregate_type == "order", order_events.c.aggregate_id == str(order_id))
    async with autocommit_connection(engine) as connection:
        return [_summary(row) for row in await connection.execute(query)]


async def event_detail(engine: AsyncEngine, event_id: uuid.UUID) -> EventDetail:
    """One event with its payload, attempts and operator actions; raises EventNotFound (saying so if discarded)."""
    async with autocommit_connection(engine) as connection:
        row = (
            await connection.execute(
                select(*_SUMMARY_COLUMNS, order_events.c.payload)
                .select_from(_EVENT_AND_DELIVERY)
                .where(order_events.c.event_id == event_id)
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            discarded = (await connection.execute(_DISCARDED, {"event_id": event_id})).one_or_none()
            if discarded is not None:
                when, who = discarded.requested_at.isoformat(), discarded.requested_by
                raise EventNotFound(f"event {event_id} was discarded at {when} by {who}")
            raise EventNotFound(f"event {event_id} does not exist")
        attempts = [Attempt(**a._mapping) for a in await connection.execute(_ATTEMPTS, {"event_id": event_id})]
        actions = [OperatorAction(**a._mapping) for a in await connection.execute(_ACTIONS, {"event_id": event_id})]
    return EventDetail(_summary(row), row.payload, attempts, actions)


async def resolve_event_id(engine: AsyncEngine, id_or_prefix: str) -> uuid.UUID:
    """The event id that `id_or_prefix` names: a whole id, or the start of exactly one event's id."""
    digits = id_or_prefix.strip().lower().replace("-", "")
    if not _HEX_DIGITS.match(digits):
        raise EventNotFound(f"{id_or_prefix!r} is neither an event id nor the start of one (hex digits and dashes)")
    if len(digits) == 32:
        return uuid.UUID(digits)
    async with autocommit_connection(engine) as connection:
        found = [
            row.event_id
            for row in await connection.execute(
                _STARTING_WITH,
                {"lowest": uuid.UUID(digits.ljust(32, "0")), "highest": uuid.UUID(digits.ljust(32, "f"))},
            )
        ]
    if not found:
        raise EventNotFound(f"no event id starts with {id_or_prefix!r}")
    if len(found) > 1:
        raise AmbiguousEventId.of(id_or_prefix, [str(event_id) for event_id in found])
    return found[0]


# Events of one status are counted up to this many: a scrape stays bounded even in a backlog of
# millions (the lag still says how far behind the relay is). SENT events are never counted.
HEALTH_COUNT_CAP = 100_000
WAITING_STATUSES = ("PENDING", "PROCESSING", "FAILED")


@dataclass(frozen=True)
class OutboxHealth:
    """What an operator watches: events waiting by status, the lag, and how long the oldest due event has waited.

    `events_by_status` counts PENDING, PROCESSING and FAILED, each up to HEALTH_COUNT_CAP. `lag_seconds`
    is the age of the oldest event not yet SENT nor FAILED (PENDING, in backoff or due, or PROCESSING):
    how far behind delivery is. FAILED events wait for an operator, not for the relay: they are counted,
    not in the lag. `oldest_due_seconds` is how long the oldest due PENDING event has waited to be claimed.
    """

    events_by_status: dict[str, int]
    lag_seconds: float
    oldest_due_seconds: float


def _count_of(status: str) -> str:
    return f"(SELECT count(*) FROM (SELECT FROM event_deliveries WHERE status = '{status}' LIMIT :cap) AS counted)"


# Every part is an index range of its own status, whatever the number of SENT rows: the counts and
# the oldest of each status read ix_order_events_status_id (status, id), where the oldest by id is the
# first inserted; the oldest due reads ix_order_events_due. EXPLAIN (ANALYZE, BUFFERS) with 200,000
# SENT events (tests/test_outbox_metrics.py): 18 pages and 0.05 ms, where a count by status read all
# 3,653 pages of the table in 75 ms.
OUTBOX_HEALTH = text(
    f"""
    SELECT {", ".join(f"{_count_of(status)} AS {status.lower()}" for status in WAITING_STATUSES)},
           extract(epoch FROM now() - (SELECT created_at FROM order_events WHERE id = least(
               (SELECT id FROM event_deliveries WHERE status = 'PENDING' ORDER BY id LIMIT 1),
               (SELECT id FROM event_deliveries WHERE status = 'PROCESSING' ORDER BY id LIMIT 1)))) AS lag_seconds,
           extract(epoch FROM now() - (
               SELECT next_attempt_at FROM event_deliveries WHERE status = 'PENDING'
               ORDER BY next_attempt_at, id LIMIT 1)) AS due_for_seconds
    """
)


async def outbox_health(engine: AsyncEngine) -> OutboxHealth:
    """The outbox as an operator watches it, read with one bounded statement."""
    async with autocommit_connection(engine) as connection:
        row = (await connection.execute(OUTBOX_HEALTH, {"cap": HEALTH_COUNT_CAP})).one()
    return OutboxHealth(
        {status: row._mapping[status.lower()] for status in WAITING_STATUSES},
        max(0.0, float(row.lag_seconds or 0)),
        max(0.0, float(row.due_for_seconds or 0)),
    )
