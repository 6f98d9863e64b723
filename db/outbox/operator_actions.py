"""What operators do to outbox events: redrive, retry now, replay, discard; each one recorded in `operator_actions`.

Every action changes its events and records, per event, what the event was before, in one statement
(one transaction): an action is never done without its record, nor recorded without being done.
A dry run selects the same events and changes nothing.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.outbox.operations import EventDetail, EventNotFailed, EventNotPending, event_detail

# Replays go through the outbox in batches of this many events, each its own short transaction.
REPLAY_BATCH = 1000

_RECORD = """
    INSERT INTO operator_actions (event_id, action, requested_by, status_before, retry_count_before,
                                  last_error_before, details)
"""

# FAILED -> PENDING, due now, with a fresh budget of attempts.
_REDRIVE = text(
    f"""
    WITH chosen AS (
        SELECT id, event_id, retry_count, last_error FROM order_events
        WHERE status = 'FAILED' AND (CAST(:event_ids AS uuid[]) IS NULL OR event_id = ANY(CAST(:event_ids AS uuid[])))
          AND (CAST(:order_id AS text) IS NULL OR (aggregate_type = 'order' AND aggregate_id = :order_id))
        FOR UPDATE
    ), changed AS (
        UPDATE order_events AS event
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
        FROM chosen WHERE event.id = chosen.id AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, 'REDRIVE', :requested_by, 'FAILED', retry_count, last_error, NULL
        FROM chosen WHERE NOT :dry_run ORDER BY id
    )
    SELECT event_id FROM chosen ORDER BY id
    """
)

# A PENDING event waiting out its backoff becomes due now (its budget of attempts unchanged). Without
# named events: every PENDING event not yet due.
_RETRY_NOW = text(
    f"""
    WITH chosen AS (
        SELECT id, event_id, retry_count, last_error, next_attempt_at FROM order_events
        WHERE status = 'PENDING'
          AND (CASE WHEN CAST(:event_ids AS uuid[]) IS NULL THEN next_attempt_at > now()
                    ELSE event_id = ANY(CAST(:event_ids AS uuid[])) END)
        FOR UPDATE
    ), changed AS (
        UPDATE order_events AS event SET next_attempt_at = now()
        FROM chosen WHERE event.id = chosen.id AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, 'RETRY_NOW', :requested_by, 'PENDING', retry_count, last_error,
               jsonb_build_object('next_attempt_at_before', next_attempt_at)
        FROM chosen WHERE NOT :dry_run ORDER BY id
    )
    SELECT event_id FROM chosen ORDER BY id
    """
)

# Which events a batched action takes: one event, one order's, and/or those that occurred in [since, until).
_SELECTED = """
          AND (CAST(:event_id AS uuid) IS NULL OR event_id = CAST(:event_id AS uuid))
          AND (CAST(:order_id AS text) IS NULL OR (aggregate_type = 'order' AND aggregate_id = :order_id))
          AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until)
"""

# SENT -> PENDING, due now, same event_id, fresh budget. The claim's rule (no earlier event of the
# order unsent) then re-delivers each order's replayed events in sequence. Rows retention is deleting
# at this moment are skipped: they are gone.
_REPLAY_BATCH = text(
    f"""
    WITH chosen AS (
        SELECT id, event_id, retry_count, last_error, sent_at FROM order_events
        WHERE status = 'SENT' AND id > :after_id {_SELECTED}
        ORDER BY id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ), changed AS (
        UPDATE order_events AS event
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), sent_at = NULL, last_error = NULL,
            lease_token = NULL, lease_expires_at = NULL
        FROM chosen WHERE event.id = chosen.id AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, 'REPLAY', :requested_by, 'SENT', retry_count, last_error,
               jsonb_build_object('sent_at_before', sent_at)
        FROM chosen WHERE NOT :dry_run ORDER BY id
    )
    SELECT id, event_id FROM chosen ORDER BY id
    """
)

# The redrive of _REDRIVE, a bounded batch at a time (for a Temporal run that redrives a range).
_REDRIVE_BATCH = text(
    f"""
    WITH chosen AS (
        SELECT id, event_id, retry_count, last_error FROM order_events
        WHERE status = 'FAILED' AND id > :after_id {_SELECTED}
        ORDER BY id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ), changed AS (
        UPDATE order_events AS event
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
        FROM chosen WHERE event.id = chosen.id AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, 'REDRIVE', :requested_by, 'FAILED', retry_count, last_error, NULL
        FROM chosen WHERE NOT :dry_run ORDER BY id
    )
    SELECT id, event_id FROM chosen ORDER BY id
    """
)

# A FAILED event is deleted with its attempts; its record keeps the whole row and every attempt, so
# nothing is lost but the event's place in the outbox. Later events of its order are no longer held.
_DISCARD = text(
    f"""
    WITH chosen AS (
        SELECT * FROM order_events
        WHERE status = 'FAILED' AND (CAST(:event_ids AS uuid[]) IS NULL OR event_id = ANY(CAST(:event_ids AS uuid[])))
          AND (CAST(:older_than_seconds AS float8) IS NULL
               OR created_at < now() - make_interval(secs => CAST(:older_than_seconds AS float8)))
        FOR UPDATE
    ), recorded AS (
        {_RECORD}
        SELECT chosen.event_id, 'DISCARD', :requested_by, 'FAILED', chosen.retry_count, chosen.last_error,
               jsonb_build_object(
                   'event_type', chosen.event_type, 'aggregate_type', chosen.aggregate_type,
                   'aggregate_id', chosen.aggregate_id, 'sequence', chosen.sequence, 'payload', chosen.payload,
                   'created_at', chosen.created_at,
                   'attempts', (SELECT coalesce(jsonb_agg(to_jsonb(attempt) - 'id' - 'event_id'
                                                          ORDER BY attempt.attempt_number, attempt.id), '[]')
                                FROM delivery_attempts AS attempt WHERE attempt.event_id = chosen.event_id))
        FROM chosen WHERE NOT :dry_run ORDER BY chosen.id
    ), deleted AS (
        DELETE FROM order_events AS event USING chosen WHERE event.id = chosen.id AND NOT :dry_run
    )
    SELECT event_id FROM chosen ORDER BY id
    """
)


async def _run(engine: AsyncEngine, statement, parameters: dict) -> list[str]:
    async with autocommit_connection(engine) as connection:
        return [str(row.event_id) for row in await connection.execute(statement, parameters)]


async def redrive_failed(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    order_id: int | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Put FAILED events back to PENDING, due now (all of them, or those named / of one order); their ids."""
    return await _run(
        engine,
        _REDRIVE,
        {
            "event_ids": event_ids,
            "order_id": None if order_id is None else str(order_id),
            "requested_by": requested_by,
            "dry_run": dry_run,
        },
    )


async def redrive_event(engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str) -> EventDetail:
    """Redrive one FAILED event; raises EventNotFound or EventNotFailed."""
    if not await redrive_failed(engine, requested_by=requested_by, event_ids=[event_id]):
        detail = await event_detail(engine, event_id)  # raises EventNotFound
        raise EventNotFailed(f"event {event_id} is {detail.event.status}; only a FAILED event can be redriven")
    return await event_detail(engine, event_id)


async def retry_now(
    engine: AsyncEngine, *, requested_by: str, event_ids: list[uuid.UUID] | None = None, dry_run: bool = False
) -> list[str]:
    """Make PENDING events due now: those named, or (none named) every one waiting out a backoff; their ids."""
    return await _run(engine, _RETRY_NOW, {"event_ids": event_ids, "requested_by": requested_by, "dry_run": dry_run})


async def retry_event_now(engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str) -> EventDetail:
    """Make one PENDING event due now; raises EventNotFound or EventNotPending."""
    if not await retry_now(engine, requested_by=requested_by, event_ids=[event_id]):
        detail = await event_detail(engine, event_id)  # raises EventNotFound
        raise EventNotPending(
            f"event {event_id} is {detail.event.status}; only a PENDING event can have its next attempt pulled to now"
        )
    return await event_detail(engine, event_id)


@dataclass(frozen=True)
class ReplaySelection:
    """Which events to act on: one event, one order's, and/or those that occurred in [since, until)."""

    order_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ActedBatch:
    """The events one batch acted on (oldest first), and the outbox id the next batch starts after."""

    event_ids: list[str]
    last_id: int


async def _act_on_batch(
    engine: AsyncEngine,
    statement,
    selection: ReplaySelection,
    *,
    after_id: int,
    limit: int,
    requested_by: str,
    dry_run: bool,
) -> ActedBatch:
    async with autocommit_connection(engine) as connection:
        rows = (
            await connection.execute(
                statement,
                {
                    "after_id": after_id,
                    "event_id": selection.event_id,
                    "order_id": None if selection.order_id is None else str(selection.order_id),
                    "since": selection.since,
                    "until": selection.until,
                    "batch": limit,
                    "requested_by": requested_by,
                    "dry_run": dry_run,
                },
            )
        ).all()
    return ActedBatch([str(row.event_id) for row in rows], rows[-1].id if rows else after_id)


async def replay_sent_batch(
    engine: AsyncEngine,
    selection: ReplaySelection,
    *,
    requested_by: str,
    after_id: int = 0,
    limit: int = REPLAY_BATCH,
    dry_run: bool = False,
) -> ActedBatch:
    """Queue at most `limit` of the selected SENT events past outbox id `after_id` for delivery again, in one
    transaction, each recorded as a REPLAY by `requested_by`."""
    return await _act_on_batch(
        engine, _REPLAY_BATCH, selection, after_id=after_id, limit=limit, requested_by=requested_by, dry_run=dry_run
    )


async def redrive_failed_batch(
    engine: AsyncEngine,
    selection: ReplaySelection,
    *,
    requested_by: str,
    after_id: int = 0,
    limit: int = REPLAY_BATCH,
) -> ActedBatch:
    """Put at most `limit` of the selected FAILED events past outbox id `after_id` back to PENDING, due now, in one
    transaction, each recorded as a REDRIVE by `requested_by`."""
    return await _act_on_batch(
        engine, _REDRIVE_BATCH, selection, after_id=after_id, limit=limit, requested_by=requested_by, dry_run=False
    )


async def replay_sent(
    engine: AsyncEngine, selection: ReplaySelection, *, requested_by: str, dry_run: bool = False
) -> list[str]:
    """Queue the selected SENT events (still retained) for delivery again with the same ids; their ids, oldest first."""
    replayed: list[str] = []
    after_id = 0
    while True:
        batch = await replay_sent_batch(
            engine, selection, requested_by=requested_by, after_id=after_id, dry_run=dry_run
        )
        replayed += batch.event_ids
        if len(batch.event_ids) < REPLAY_BATCH:
            return replayed
        after_id = batch.last_id


async def discard_failed(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    older_than_seconds: float | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete FAILED events (those named, or all created more than `older_than_seconds` ago), keeping a record; ids."""
    return await _run(
        engine,
        _DISCARD,
        {
            "event_ids": event_ids,
            "older_than_seconds": older_than_seconds,
            "requested_by": requested_by,
            "dry_run": dry_run,
        },
    )


async def discard_event(engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str) -> str:
    """Discard one FAILED event; raises EventNotFound or EventNotFailed."""
    if not await discard_failed(engine, requested_by=requested_by, event_ids=[event_id]):
        detail = await event_detail(engine, event_id)  # raises EventNotFound
        raise EventNotFailed(f"event {event_id} is {detail.event.status}; only a FAILED event can be discarded")
    return str(event_id)
