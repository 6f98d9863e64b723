"""What operators do to deliveries: redrive, retry now, replay, discard; each one recorded in `operator_actions`.

Every action works on deliveries (an event's delivery to one destination): to the destination named, or
(none named) to every destination where it applies. Every action changes its deliveries and records, per
delivery, what it was before, in one statement (one transaction): an action is never done without its
record, nor recorded without being done. A dry run selects the same deliveries and changes nothing.
Redrive and replay go a bounded batch at a time, each batch its own short transaction.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.outbox.destinations import active_destinations
from db.outbox.operations import (
    EventDetail,
    EventNotFailed,
    EventNotPending,
    check_destination,
    event_detail,
)
from db.statuses import NO_DELIVERY

# Redrives and replays go through the outbox in batches of this many events, each its own short transaction.
REPLAY_BATCH = 1000

_RECORD = """
    INSERT INTO operator_actions (event_id, destination, action, requested_by, status_before, retry_count_before,
                                  last_error_before, details)
"""

# A PENDING delivery waiting out its backoff becomes due now (its budget of attempts unchanged). Without
# named events: every PENDING delivery not yet due.
_RETRY_NOW = text(
    f"""
    WITH chosen AS (
        SELECT id, destination, event_id, retry_count, last_error, next_attempt_at FROM event_deliveries
        WHERE status = 'PENDING'
          AND (CAST(:destination AS text) IS NULL OR destination = :destination)
          AND (CASE WHEN CAST(:event_ids AS uuid[]) IS NULL THEN next_attempt_at > now()
                    ELSE event_id = ANY(CAST(:event_ids AS uuid[])) END)
        FOR UPDATE
    ), changed AS (
        UPDATE event_deliveries AS delivery SET next_attempt_at = now()
        FROM chosen WHERE (delivery.id, delivery.destination) = (chosen.id, chosen.destination) AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, destination, 'RETRY_NOW', :requested_by, 'PENDING', retry_count, last_error,
               jsonb_build_object('next_attempt_at_before', next_attempt_at)
        FROM chosen WHERE NOT :dry_run ORDER BY id, destination
    )
    SELECT event_id, destination FROM chosen ORDER BY id, destination
    """
)

# Which events a batched action takes: named ones, one order's, and/or those that occurred in [since, until).
_SELECTED = """
          AND (CAST(:event_ids AS uuid[]) IS NULL OR event.event_id = ANY(CAST(:event_ids AS uuid[])))
          AND (CAST(:order_id AS text) IS NULL OR (event.aggregate_type = 'order' AND event.aggregate_id = :order_id))
          AND (CAST(:since AS timestamptz) IS NULL OR event.created_at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR event.created_at < :until)
"""

# One destination's SENT deliveries -> PENDING, due now, same event_id, fresh budget; and, with
# :create_missing, a delivery for each selected event of a type the destination takes that it has none of
# (a destination added after the event was written, or whose delivery was discarded). The claim's rule
# (no earlier event of the order unsent to that destination) then re-delivers each order's events in
# sequence. The batch is the next :batch selected events past :after_id; events retention is deleting
# at this moment are skipped: they are gone.
_REPLAY_BATCH = text(
    f"""
    WITH scanned AS (
        SELECT event.id, event.event_id, event.aggregate_type, event.aggregate_id, event.sequence, event.event_type
        FROM order_events AS event
        WHERE event.id > :after_id {_SELECTED}
        ORDER BY event.id
        LIMIT :batch
        FOR KEY SHARE OF event SKIP LOCKED
    ), sent AS (
        -- By primary key, one probe per scanned event (a join could read every delivery).
        SELECT delivery.id, delivery.event_id, delivery.retry_count, delivery.last_error, delivery.sent_at
        FROM event_deliveries AS delivery
        WHERE delivery.id = ANY(ARRAY(SELECT id FROM scanned)) AND delivery.destination = :destination
          AND delivery.status = 'SENT'
        FOR UPDATE OF delivery SKIP LOCKED
    ), missing AS (
        SELECT scanned.* FROM scanned JOIN destinations AS destination ON destination.name = :destination
        WHERE :create_missing AND destination.removed_at IS NULL
          AND (destination.event_types IS NULL OR scanned.event_type = ANY(destination.event_types))
          AND (SELECT 1 FROM event_deliveries AS delivery
               WHERE delivery.id = scanned.id AND delivery.destination = :destination) IS NULL
    ), changed AS (
        UPDATE event_deliveries AS delivery
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), sent_at = NULL, last_error = NULL,
            lease_token = NULL, lease_expires_at = NULL, not_before = NULL
        FROM sent WHERE delivery.id = sent.id AND delivery.destination = :destination AND NOT :dry_run
    ), created AS (
        INSERT INTO event_deliveries (id, destination, event_id, aggregate_type, aggregate_id, sequence)
        SELECT id, :destination, event_id, aggregate_type, aggregate_id, sequence FROM missing WHERE NOT :dry_run
        ON CONFLICT DO NOTHING
    ), acted AS (
        SELECT id, event_id, 'SENT' AS status_before, retry_count, last_error,
               jsonb_build_object('sent_at_before', sent_at) AS details
        FROM sent
        UNION ALL
        SELECT id, event_id, '{NO_DELIVERY}', 0, NULL, jsonb_build_object('delivery_created', true) FROM missing
    ), recorded AS (
        {_RECORD}
        SELECT event_id, :destination, 'REPLAY', :requested_by, status_before, retry_count, last_error, details
        FROM acted WHERE NOT :dry_run ORDER BY id
    )
    SELECT (SELECT count(*) FROM scanned) AS scanned, (SELECT max(id) FROM scanned) AS last_scanned,
           acted.id, acted.event_id
    FROM (SELECT 1) AS one LEFT JOIN acted ON true
    ORDER BY acted.id
    """
)

# One destination's FAILED deliveries -> PENDING, due now, with a fresh budget of attempts, the next
# :batch of them past :after_id (an index range of that destination's FAILED deliveries).
_REDRIVE_BATCH = text(
    f"""
    WITH chosen AS (
        SELECT delivery.id, delivery.event_id, delivery.retry_count, delivery.last_error
        FROM event_deliveries AS delivery JOIN order_events AS event ON event.id = delivery.id
        WHERE delivery.destination = :destination AND delivery.status = 'FAILED' AND delivery.id > :after_id
              {_SELECTED}
        ORDER BY delivery.id
        LIMIT :batch
        FOR UPDATE OF delivery SKIP LOCKED
    ), changed AS (
        UPDATE event_deliveries AS delivery
        SET status = 'PENDING', retry_count = 0, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
        FROM chosen WHERE delivery.id = chosen.id AND delivery.destination = :destination AND NOT :dry_run
    ), recorded AS (
        {_RECORD}
        SELECT event_id, :destination, 'REDRIVE', :requested_by, 'FAILED', retry_count, last_error, NULL
        FROM chosen WHERE NOT :dry_run ORDER BY id
    )
    SELECT (SELECT count(*) FROM chosen) AS scanned, (SELECT max(id) FROM chosen) AS last_scanned,
           chosen.id, chosen.event_id
    FROM (SELECT 1) AS one LEFT JOIN chosen ON true
    ORDER BY chosen.id
    """
)

# A FAILED delivery is deleted with its attempts; its record keeps the event's row and those attempts, so
# nothing is lost but the delivery's place in the outbox: the later events of its order are no longer held
# for that destination. The event itself goes once no delivery of it is left (a delivery discarded at the
# same moment by another statement may leave it without any: retention removes it then).
_DISCARD = text(
    f"""
    WITH chosen AS (
        SELECT delivery.id, delivery.destination, delivery.event_id, delivery.retry_count, delivery.last_error,
               event.event_type, event.aggregate_type, event.aggregate_id, event.sequence, event.payload,
               event.created_at
        FROM event_deliveries AS delivery JOIN order_events AS event ON event.id = delivery.id
        WHERE delivery.status = 'FAILED'
          AND (CAST(:destination AS text) IS NULL OR delivery.destination = :destination)
          AND (CAST(:event_ids AS uuid[]) IS NULL OR delivery.event_id = ANY(CAST(:event_ids AS uuid[])))
          AND (CAST(:older_than_seconds AS float8) IS NULL
               OR event.created_at < now() - make_interval(secs => CAST(:older_than_seconds AS float8)))
        FOR UPDATE OF delivery, event
    ), recorded AS (
        {_RECORD}
        SELECT chosen.event_id, chosen.destination, 'DISCARD', :requested_by, 'FAILED', chosen.retry_count,
               chosen.last_error,
               jsonb_build_object(
                   'event_type', chosen.event_type, 'aggregate_type', chosen.aggregate_type,
                   'aggregate_id', chosen.aggregate_id, 'sequence', chosen.sequence, 'payload', chosen.payload,
                   'created_at', chosen.created_at,
                   'attempts', (SELECT coalesce(jsonb_agg(to_jsonb(attempt) - 'id' - 'event_id'
                                                          ORDER BY attempt.attempt_number, attempt.id), '[]')
                                FROM delivery_attempts AS attempt
                                WHERE attempt.event_id = chosen.event_id AND attempt.destination = chosen.destination))
        FROM chosen WHERE NOT :dry_run ORDER BY chosen.id, chosen.destination
    ), attempts_deleted AS (
        DELETE FROM delivery_attempts AS attempt USING chosen
        WHERE attempt.event_id = chosen.event_id AND attempt.destination = chosen.destination AND NOT :dry_run
    ), deliveries_deleted AS (
        DELETE FROM event_deliveries AS delivery USING chosen
        WHERE delivery.id = chosen.id AND delivery.destination = chosen.destination AND NOT :dry_run
    ), events_deleted AS (
        DELETE FROM order_events AS event
        WHERE event.id IN (SELECT id FROM chosen) AND NOT :dry_run
          AND NOT EXISTS (SELECT FROM event_deliveries AS other
                          WHERE other.id = event.id
                            AND other.destination NOT IN (SELECT destination FROM chosen WHERE chosen.id = event.id))
    )
    SELECT event_id, destination FROM chosen ORDER BY id, destination
    """
)


@dataclass(frozen=True)
class ActedOn:
    """A delivery an action took: the event's, to the destination."""

    event_id: str
    destination: str


@dataclass(frozen=True)
class ReplaySelection:
    """Which events to act on: one event (or those named), one order's, and/or those that occurred in
    [since, until)."""

    order_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: uuid.UUID | None = None
    event_ids: tuple[uuid.UUID, ...] | None = None

    def parameters(self) -> dict:
        named = list(self.event_ids or ()) + ([self.event_id] if self.event_id is not None else [])
        return {
            "event_ids": named or None,
            "order_id": None if self.order_id is None else str(self.order_id),
            "since": self.since,
            "until": self.until,
        }


@dataclass(frozen=True)
class ActedBatch:
    """The deliveries to one destination a batch acted on (oldest first), the outbox id the next batch starts
    after, and whether there may be more (the batch was full)."""

    acted: list[ActedOn]
    last_id: int
    more: bool

    @property
    def event_ids(self) -> list[str]:
        return [delivery.event_id for delivery in self.acted]


async def _destinations(engine: AsyncEngine, destination: str | None) -> list[str]:
    """[destination] (each batch checks it is configured), or every configured one."""
    if destination is not None:
        return [destination]
    return await active_destinations(engine)


async def _run(engine: AsyncEngine, statement, parameters: dict, *, configured: bool) -> list[ActedOn]:
    async with autocommit_connection(engine) as connection:
        if parameters["destination"] is not None:
            await check_destination(connection, parameters["destination"], configured=configured)
        return [ActedOn(str(row.event_id), row.destination) for row in await connection.execute(statement, parameters)]


async def _act_on_batch(
    engine: AsyncEngine, statement, selection: ReplaySelection, *, destination: str, after_id: int, limit: int, **more
) -> ActedBatch:
    async with autocommit_connection(engine) as connection:
        await check_destination(connection, destination, configured=True)
        rows = (
            await connection.execute(
                statement,
                {
                    **selection.parameters(),
                    "destination": destination,
                    "after_id": after_id,
                    "batch": limit,
                    **more,
                },
            )
        ).all()
    acted = [ActedOn(str(row.event_id), destination) for row in rows if row.id is not None]
    scanned = rows[0].scanned
    return ActedBatch(acted, rows[0].last_scanned or after_id, more=scanned == limit)


async def _in_batches(engine: AsyncEngine, act, destination: str | None) -> list[ActedOn]:
    """Every batch of `act(destination, after_id)` for the destination named, or for each configured one."""
    acted: list[ActedOn] = []
    for name in await _destinations(engine, destination):
        after_id = 0
        while True:
            batch = await act(name, after_id)
            acted += batch.acted
            if not batch.more:
                break
            after_id = batch.last_id
    return acted


async def redrive_failed_batch(
    engine: AsyncEngine,
    selection: ReplaySelection,
    *,
    destination: str,
    requested_by: str,
    after_id: int = 0,
    limit: int = REPLAY_BATCH,
    dry_run: bool = False,
) -> ActedBatch:
    """Put at most `limit` of the selected FAILED deliveries to `destination` past outbox id `after_id` back to
    PENDING, due now, in one transaction, each recorded as a REDRIVE by `requested_by`."""
    return await _act_on_batch(
        engine,
        _REDRIVE_BATCH,
        selection,
        destination=destination,
        after_id=after_id,
        limit=limit,
        requested_by=requested_by,
        dry_run=dry_run,
    )


async def replay_sent_batch(
    engine: AsyncEngine,
    selection: ReplaySelection,
    *,
    destination: str,
    requested_by: str,
    after_id: int = 0,
    limit: int = REPLAY_BATCH,
    dry_run: bool = False,
    create_missing: bool = True,
) -> ActedBatch:
    """Among the next `limit` selected events past outbox id `after_id`, queue `destination`'s SENT deliveries
    again and (with `create_missing`) give it the deliveries it has none of, in one transaction, each recorded
    as a REPLAY by `requested_by`."""
    return await _act_on_batch(
        engine,
        _REPLAY_BATCH,
        selection,
        destination=destination,
        after_id=after_id,
        limit=limit,
        requested_by=requested_by,
        dry_run=dry_run,
        create_missing=create_missing,
    )


async def redrive_failed(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    order_id: int | None = None,
    destination: str | None = None,
    dry_run: bool = False,
) -> list[ActedOn]:
    """Put FAILED deliveries back to PENDING, due now (all of them, or those of the events named / of one order;
    to `destination` or to every configured one), in bounded batches; the deliveries acted on."""
    selection = ReplaySelection(order_id=order_id, event_ids=tuple(event_ids) if event_ids else None)

    async def act(name: str, after_id: int) -> ActedBatch:
        return await redrive_failed_batch(
            engine, selection, destination=name, requested_by=requested_by, after_id=after_id, dry_run=dry_run
        )

    return await _in_batches(engine, act, destination)


async def replay_sent(
    engine: AsyncEngine,
    selection: ReplaySelection,
    *,
    requested_by: str,
    destination: str | None = None,
    dry_run: bool = False,
) -> list[ActedOn]:
    """Deliver the selected events (still retained) again with the same ids, in bounded batches: to `destination`
    (its SENT deliveries again, and a delivery of each event it has none of: how a destination added later gets
    earlier events), or (none named) every configured destination's SENT deliveries; the deliveries acted on."""

    async def act(name: str, after_id: int) -> ActedBatch:
        return await replay_sent_batch(
            engine,
            selection,
            destination=name,
            requested_by=requested_by,
            after_id=after_id,
            dry_run=dry_run,
            create_missing=destination is not None,
        )

    return await _in_batches(engine, act, destination)


async def redrive_event(
    engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str, destination: str | None = None
) -> EventDetail:
    """Redrive the event's FAILED deliveries (to `destination`, or every one); raises EventNotFound,
    DestinationNotFound, DeliveryNotFound or EventNotFailed."""
    detail = await event_detail(engine, event_id, destination=destination)  # raises when there is no such thing
    if not await redrive_failed(engine, requested_by=requested_by, event_ids=[event_id], destination=destination):
        raise EventNotFailed(f"{_states(detail, destination)}; only a FAILED delivery can be redriven")
    return await event_detail(engine, event_id, destination=destination)


async def retry_now(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    destination: str | None = None,
    dry_run: bool = False,
) -> list[ActedOn]:
    """Make PENDING deliveries due now: those of the events named, or (none named) every one waiting out a
    backoff; to `destination` or to any; the deliveries acted on."""
    return await _run(
        engine,
        _RETRY_NOW,
        {"event_ids": event_ids, "destination": destination, "requested_by": requested_by, "dry_run": dry_run},
        configured=True,
    )


async def retry_event_now(
    engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str, destination: str | None = None
) -> EventDetail:
    """Make the event's PENDING deliveries (to `destination`, or every one) due now; raises EventNotFound,
    DestinationNotFound, DeliveryNotFound or EventNotPending."""
    detail = await event_detail(engine, event_id, destination=destination)
    if not await retry_now(engine, requested_by=requested_by, event_ids=[event_id], destination=destination):
        raise EventNotPending(
            f"{_states(detail, destination)}; only a PENDING delivery can have its next attempt pulled to now"
        )
    return await event_detail(engine, event_id, destination=destination)


async def discard_failed(
    engine: AsyncEngine,
    *,
    requested_by: str,
    event_ids: list[uuid.UUID] | None = None,
    older_than_seconds: float | None = None,
    destination: str | None = None,
    dry_run: bool = False,
) -> list[ActedOn]:
    """Delete FAILED deliveries (of the events named, or of all created more than `older_than_seconds` ago; to
    `destination` or to any), each recorded with the event and its attempts; an event goes with its last
    delivery. The deliveries acted on."""
    return await _run(
        engine,
        _DISCARD,
        {
            "event_ids": event_ids,
            "older_than_seconds": older_than_seconds,
            "destination": destination,
            "requested_by": requested_by,
            "dry_run": dry_run,
        },
        configured=False,  # a removed destination's FAILED deliveries may still be cleared away
    )


async def discard_event(
    engine: AsyncEngine, event_id: uuid.UUID, *, requested_by: str, destination: str | None = None
) -> list[ActedOn]:
    """Discard the event's FAILED deliveries (to `destination`, or every one); raises EventNotFound,
    DestinationNotFound, DeliveryNotFound or EventNotFailed."""
    detail = await event_detail(engine, event_id, destination=destination)
    discarded = await discard_failed(engine, requested_by=requested_by, event_ids=[event_id], destination=destination)
    if not discarded:
        raise EventNotFailed(f"{_states(detail, destination)}; only a FAILED delivery can be discarded")
    return discarded


def _states(detail: EventDetail, destination: str | None) -> str:
    """`event X is SENT` for one destination, or `event X is SENT to platform, PENDING to crm` for all."""
    event = detail.event
    if destination is not None:
        return f"event {event.event_id} is {event.status} to {destination}"
    each = ", ".join(f"{delivery.status} to {delivery.destination}" for delivery in detail.deliveries)
    return f"event {event.event_id} is {each or 'delivered nowhere'}"
