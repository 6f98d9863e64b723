"""What operators read of the outbox: list deliveries, look at one event with its deliveries, attempts and actions.

The actions themselves (redrive, retry-now, replay, discard) are in `db/outbox/operator_actions.py`.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.errors import DomainError
from db.tables import delivery_attempts, destinations, event_deliveries, operator_actions, order_events


class OutboxError(DomainError):
    """Base of the errors operators get from the outbox."""

    code = "OUTBOX_ERROR"


class EventNotFound(OutboxError):
    """No event has this event_id."""

    code = "EVENT_NOT_FOUND"


class EventNotFailed(OutboxError):
    """Only a FAILED delivery can be redriven or discarded."""

    code = "EVENT_NOT_FAILED"


class EventNotPending(OutboxError):
    """Only a PENDING delivery can have its next attempt pulled to now."""

    code = "EVENT_NOT_PENDING"


class DestinationNotFound(OutboxError):
    """No destination has this name (or, where it must be configured, it was removed)."""

    code = "DESTINATION_NOT_FOUND"


class DeliveryNotFound(OutboxError):
    """The event exists but has no delivery to the destination named."""

    code = "DELIVERY_NOT_FOUND"


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
    """An event and the state of its delivery: to one destination, or (destination None) over all of them.

    Over all of them: FAILED if any delivery is FAILED, else PROCESSING or PENDING if any waits, else SENT;
    `retry_count` is the largest, `next_attempt_at` the soonest of those waiting, `last_error` that of a
    delivery in that status (else of any), `sent_at` the last delivery's once every one is SENT.
    """

    event_id: str
    destination: str | None
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
class Delivery:
    """The delivery of an event to one destination."""

    destination: str
    status: str
    retry_count: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as logged, to which destination, with the Temporal run that made it."""

    destination: str
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
    """An operator's action on the event's delivery to `destination`, and what that delivery was before it.

    `status_before` is NO_DELIVERY for a replay that gave the destination a delivery it did not have.
    """

    destination: str
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

    destination: str
    redriven_at: datetime
    requested_by: str
    retry_count_before: int
    last_error_before: str | None


@dataclass(frozen=True)
class EventDetail:
    """One event with its payload, its deliveries, every attempt and every operator action.

    `event` is the delivery to the destination asked for, or the state over all of them (see EventSummary).
    """

    event: EventSummary
    payload: dict
    deliveries: list[Delivery]
    attempts: list[Attempt]
    actions: list[OperatorAction]

    @property
    def redrives(self) -> list[Redrive]:
        return [
            Redrive(
                action.destination,
                action.requested_at,
                action.requested_by,
                action.retry_count_before,
                action.last_error_before,
            )
            for action in self.actions
            if action.action == "REDRIVE"
        ]


# Which of several deliveries speaks for the event: the first status found here, in this order.
_OVERALL_ORDER = ("FAILED", "PROCESSING", "PENDING", "SENT")

_EVENT_COLUMNS = [
    order_events.c[field]
    for field in ("event_id", "event_type", "aggregate_type", "aggregate_id", "sequence", "created_at", "payload")
]
_DELIVERY_COLUMNS = [event_deliveries.c[field] for field in Delivery.__dataclass_fields__]
_SUMMARY_COLUMNS = [
    event_deliveries.c.id,
    *(event_deliveries.c[field] for field in Delivery.__dataclass_fields__),
    *(order_events.c[field] for field in ("event_id", "event_type", "aggregate_type", "aggregate_id", "sequence")),
    order_events.c.created_at,
]
_DELIVERIES = (
    select(*_DELIVERY_COLUMNS).where(event_deliveries.c.id == bindparam("id")).order_by(event_deliveries.c.destination)
)
_ATTEMPTS = (
    select(*(delivery_attempts.c[field] for field in Attempt.__dataclass_fields__))
    .where(delivery_attempts.c.event_id == bindparam("event_id"))
    .order_by(delivery_attempts.c.attempted_at, delivery_attempts.c.id)
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
_DESTINATION = select(destinations.c.name, destinations.c.removed_at).where(destinations.c.name == bindparam("name"))
_DESTINATION_NAMES = select(destinations.c.name).order_by(destinations.c.name)
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


def overall(event, deliveries: list[Delivery]) -> EventSummary:
    """The event's state over all its deliveries (see EventSummary); `event` holds the event's own columns."""
    identity = {
        "event_id": str(event.event_id),
        "destination": None,
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "created_at": event.created_at,
    }
    if not deliveries:  # no destination takes its type: nothing to wait for
        return EventSummary(
            **identity, status="SENT", retry_count=0, next_attempt_at=event.created_at, last_error=None, sent_at=None
        )
    status = next(status for status in _OVERALL_ORDER if any(d.status == status for d in deliveries))
    speaking = [delivery for delivery in deliveries if delivery.status == status]
    waiting = [delivery for delivery in deliveries if delivery.status in ("PENDING", "PROCESSING")] or deliveries
    errors = [delivery.last_error for delivery in speaking + deliveries if delivery.last_error]
    return EventSummary(
        **identity,
        status=status,
        retry_count=max(delivery.retry_count for delivery in deliveries),
        next_attempt_at=min(delivery.next_attempt_at for delivery in waiting),
        last_error=errors[0] if errors else None,
        sent_at=max(delivery.sent_at for delivery in deliveries) if status == "SENT" else None,
    )


async def check_destination(connection, name: str, *, configured: bool = False) -> None:
    """Raise DestinationNotFound unless `name` is a destination (and, if `configured`, one not removed)."""
    row = (await connection.execute(_DESTINATION, {"name": name})).one_or_none()
    if row is None or (configured and row.removed_at is not None):
        known = [known for (known,) in await connection.execute(_DESTINATION_NAMES)]
        why = f"destination {name!r} was removed from the configuration" if row else f"unknown destination {name!r}"
        raise DestinationNotFound(f"{why}; destinations: {', '.join(known) or 'none'}")


async def list_events(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    order_id: int | None = None,
    destination: str | None = None,
    limit: int = 50,
) -> list[EventSummary]:
    """Deliveries (one row per event and destination) newest event first, optionally of one status, order and/or
    destination; raises DestinationNotFound for a name that is not a destination."""
    query = select(*_SUMMARY_COLUMNS).select_from(
        event_deliveries.join(order_events, order_events.c.id == event_deliveries.c.id)
    )
    if status is not None:
        query = query.where(event_deliveries.c.status == status)
    if order_id is not None:
        query = query.where(order_events.c.aggregate_type == "order", order_events.c.aggregate_id == str(order_id))
    async with autocommit_connection(engine) as connection:
        if destination is not None:
            await check_destination(connection, destination)
            names = [destination]
        else:
            names = [name for (name,) in await connection.execute(_DESTINATION_NAMES)]
        # Each destination's newest first, an index range of (destination, status, id) when a status is asked
        # for (a scan of every delivery newest first could read the whole table for a rare status), then merged.
        newest = [
            query.where(event_deliveries.c.destination == name)
            .order_by(event_deliveries.c.id.desc())
            .limit(limit)
            .subquery()
            .select()
            for name in names
        ]
        if not newest:
            return []
        merged = union_all(*newest).subquery()
        rows = await connection.execute(select(merged).order_by(merged.c.id.desc(), merged.c.destination).limit(limit))
        return [_summary(row) for row in rows]


async def event_detail(engine: AsyncEngine, event_id: uuid.UUID, *, destination: str | None = None) -> EventDetail:
    """One event with its payload, deliveries, attempts and operator actions; `event` is `destination`'s delivery
    (or the state over all). Raises EventNotFound (saying so if discarded), DestinationNotFound, DeliveryNotFound."""
    async with autocommit_connection(engine) as connection:
        if destination is not None:
            await check_destination(connection, destination)
        row = (
            await connection.execute(
                select(order_events.c.id, *_EVENT_COLUMNS).where(order_events.c.event_id == event_id)
            )
        ).one_or_none()
        if row is None:
            discarded = (await connection.execute(_DISCARDED, {"event_id": event_id})).one_or_none()
            if discarded is not None:
                when, who = discarded.requested_at.isoformat(), discarded.requested_by
                raise EventNotFound(f"event {event_id} was discarded at {when} by {who}")
            raise EventNotFound(f"event {event_id} does not exist")
        deliveries = [Delivery(**d._mapping) for d in await connection.execute(_DELIVERIES, {"id": row.id})]
        attempts = [Attempt(**a._mapping) for a in await connection.execute(_ATTEMPTS, {"event_id": event_id})]
        actions = [OperatorAction(**a._mapping) for a in await connection.execute(_ACTIONS, {"event_id": event_id})]
    summary = overall(row, deliveries)
    if destination is not None:
        chosen = [delivery for delivery in deliveries if delivery.destination == destination]
        if not chosen:
            raise DeliveryNotFound(f"event {event_id} has no delivery to {destination}")
        summary = EventSummary(**{**vars(summary), **vars(chosen[0])})
    return EventDetail(summary, row.payload, deliveries, attempts, actions)


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


# Deliveries of one status are counted up to this many per destination: a scrape stays bounded even in a
# backlog of millions (the lag still says how far behind the relay is). SENT deliveries are never counted.
HEALTH_COUNT_CAP = 100_000
WAITING_STATUSES = ("PENDING", "PROCESSING", "FAILED")


@dataclass(frozen=True)
class OutboxHealth:
    """What an operator watches of one destination: deliveries waiting by status, the lag, the oldest due.

    `events_by_status` counts PENDING, PROCESSING and FAILED deliveries, each up to HEALTH_COUNT_CAP.
    `lag_seconds` is the age of the oldest event whose delivery is not yet SENT nor FAILED (PENDING, in
    backoff or due, or PROCESSING): how far behind delivery to this destination is. FAILED deliveries wait
    for an operator, not for the relay: they are counted, not in the lag. `oldest_due_seconds` is how long
    the oldest due PENDING delivery has waited to be claimed.
    """

    destination: str
    events_by_status: dict[str, int]
    lag_seconds: float
    oldest_due_seconds: float


def _count_of(status: str) -> str:
    return (
        "(SELECT count(*) FROM (SELECT FROM event_deliveries AS delivery"
        f" WHERE delivery.destination = destination.name AND delivery.status = '{status}' LIMIT :cap) AS counted)"
    )


def _oldest_of(status: str) -> str:
    # The oldest by id is the first inserted; its age is the event's (one more row, by primary key).
    return (
        "(SELECT event.created_at FROM order_events AS event WHERE event.id = ("
        "SELECT delivery.id FROM event_deliveries AS delivery"
        f" WHERE delivery.destination = destination.name AND delivery.status = '{status}'"
        " ORDER BY delivery.id LIMIT 1))"
    )


# One row per configured destination, every part an index range of one destination and status, whatever
# the number of SENT deliveries: the counts and the oldest of each status read ix_event_deliveries_status_id
# (destination, status, id), the oldest due reads ix_event_deliveries_due (tests/test_outbox_metrics.py
# checks the pages read against a count of every delivery).
OUTBOX_HEALTH = text(
    f"""
    SELECT destination.name AS destination,
           {", ".join(f"{_count_of(status)} AS {status.lower()}" for status in WAITING_STATUSES)},
           extract(epoch FROM now() - least({_oldest_of("PENDING")}, {_oldest_of("PROCESSING")})) AS lag_seconds,
           extract(epoch FROM now() - (
               SELECT delivery.next_attempt_at FROM event_deliveries AS delivery
               WHERE delivery.destination = destination.name AND delivery.status = 'PENDING'
               ORDER BY delivery.next_attempt_at, delivery.id LIMIT 1)) AS due_for_seconds
    FROM destinations AS destination
    WHERE destination.removed_at IS NULL
    ORDER BY destination.name
    """
)


async def outbox_health(engine: AsyncEngine) -> list[OutboxHealth]:
    """The outbox as an operator watches it, per configured destination, read with one bounded statement."""
    async with autocommit_connection(engine) as connection:
        rows = (await connection.execute(OUTBOX_HEALTH, {"cap": HEALTH_COUNT_CAP})).all()
    return [
        OutboxHealth(
            row.destination,
            {status: row._mapping[status.lower()] for status in WAITING_STATUSES},
            max(0.0, float(row.lag_seconds or 0)),
            max(0.0, float(row.due_for_seconds or 0)),
        )
        for row in rows
    ]
