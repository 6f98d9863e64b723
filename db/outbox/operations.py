"""What operators do with the outbox: list events, look at one with its attempts, redrive FAILED ones."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.errors import DomainError
from db.tables import delivery_attempts, event_redrives, order_events


class OutboxError(DomainError):
    """Base of the errors operators get from the outbox."""

    code = "OUTBOX_ERROR"


class EventNotFound(OutboxError):
    """No event has this event_id."""

    code = "EVENT_NOT_FOUND"


class EventNotFailed(OutboxError):
    """Only a FAILED event can be redriven."""

    code = "EVENT_NOT_FAILED"


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
class Redrive:
    """An operator's redrive of the event."""

    redriven_at: datetime
    requested_by: str
    retry_count_before: int
    last_error_before: str | None


@dataclass(frozen=True)
class EventDetail:
    """One event with its payload, every attempt and every redrive."""

    event: EventSummary
    payload: dict
    attempts: list[Attempt]
    redrives: list[Redrive]


_SUMMARY_COLUMNS = [order_events.c[field] for field in EventSummary.__dataclass_fields__]
_ATTEMPTS = (
    select(*(delivery_attempts.c[field] for field in Attempt.__dataclass_fields__))
    .where(delivery_attempts.c.event_id == bindparam("event_id"))
    .order_by(delivery_attempts.c.attempt_number, delivery_attempts.c.id)
)
_REDRIVES = (
    select(*(event_redrives.c[field] for field in Redrive.__dataclass_fields__))
    .where(event_redrives.c.event_id == bindparam("event_id"))
    .order_by(event_redrives.c.id)
)

# FAILED -> PENDING, due now, with a fresh budget of attempts; the redrive itself is recorded.
_REDRIVE = text(
    """
    WITH failed AS (
        SELECT id, event_id, retry_count, last_error FROM order_events
        WHERE status = 'FAILED' AND (CAST(:event_ids AS uuid[]) IS NULL OR event_id = ANY(CAST(:event_ids AS uuid[])))
          AND (CAST(:order_id AS text) IS NULL OR (aggregate_type = 'order' AND aggregate_id = :order_id))
        FOR UPDATE
    ), redriven AS (
        UPDATE order_events AS event
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
        FROM failed WHERE event.id = failed.id AND NOT :dry_run
    ), recorded AS (
        INSERT INTO event_redrives (event_id, requested_by, retry_count_before, last_error_before)
        SELECT event_id, :requested_by, retry_count, last_error FROM failed WHERE NOT :dry_run
    )
    SELECT event_id FROM failed ORDER BY id
    """
)


def _summary(row) -> EventSummary:
    fields = {name: row._mapping[name] for name in EventSummary.__dataclass_fields__}
    return EventSummary(**{**fields, "event_id": str(row.event_id)})


async def list_events(
    engine: AsyncEngine, *, status: str | None = None, order_id: int | None = None, limit: int = 50
) -> list[EventSummary]:
    """Events newest first, optionally of one status and/or one order."""
    query = select(*_SUMMARY_COLUMNS).order_by(order_events.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(order_events.c.status == status)
    if order_id is not None:
        query = query.where(order_events.c.aggregate_type == "order", order_events.c.aggregate_id == str(order_id))
    async with autocommit_connection(engine) as connection:
        return [_summary(row) for row in await connection.execute(query)]


async def event_detail(engine: AsyncEngine, event_id: uuid.UUID) -> EventDetail:
    """One event with its payload, attempts and redrives."""
    async with autocommit_connection(engine) as connection:
        row = (
            await connection.execute(
                select(*_SUMMARY_COLUMNS, order_events.c.payload).where(order_events.c.event_id == event_id)
            )
        ).one_or_none()
        if row is None:
            raise EventNotFound(f"event {event_id} does not exist")
        attempts = [Attempt(**a._mapping) for a in await connection.execute(_ATTEMPTS, {"event_id": event_id})]
        redrives = [Redrive(**r._mapping) for r in await connection.execute(_REDRIVES, {"event_id": event_id})]
    return EventDetail(_summary(row), row.payload, attempts, redrives)


async def redrive_failed(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    order_id: int | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Put FAILED events back to PENDING, due now (all of them, or those named / of one order); their ids."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(
            _REDRIVE,
            {
                "event_ids": event_ids,
                "order_id": None if order_id is None else str(order_id),
                "requested_by": requested_by,
                "dry_run": dry_run,
            },
        )
        return [str(row.event_id) for row in rows]


async def redrive_event(engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str) -> EventDetail:
    """Redrive one FAILED event; raises EventNotFound or EventNotFailed."""
    if not await redrive_failed(engine, requested_by=requested_by, event_ids=[event_id]):
        detail = await event_detail(engine, event_id)  # raises EventNotFound
        raise EventNotFailed(f"event {event_id} is {detail.event.status}; only a FAILED event can be redriven")
    return await event_detail(engine, event_id)


@dataclass(frozen=True)
class OutboxHealth:
    """Events per status, and how long the oldest due PENDING event has waited."""

    events_by_status: dict[str, int]
    oldest_due_seconds: float


_HEALTH = text(
    """
    SELECT status, count(*) AS events,
           coalesce(extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())), 0)
               AS oldest_due_seconds
    FROM order_events GROUP BY status
    """
)


async def outbox_health(engine: AsyncEngine) -> OutboxHealth:
    """What an operator watches: the backlog by status and the age of the oldest due event."""
    async with autocommit_connection(engine) as connection:
        rows = (await connection.execute(_HEALTH)).all()
    by_status = {status: 0 for status in ("PENDING", "PROCESSING", "SENT", "FAILED")}
    by_status.update({row.status: row.events for row in rows})
    oldest = next((float(row.oldest_due_seconds) for row in rows if row.status == "PENDING"), 0.0)
    return OutboxHealth(by_status, oldest)
