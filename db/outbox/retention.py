"""Outbox retention: delivered events kept past their time are deleted with their deliveries and attempts, one
bounded batch at a time.

An event is deleted only when its delivery to every configured destination (one not removed) is `SENT`,
and was sent longer ago than the retention period: an event any such destination still waits for, or
failed, stays whatever its age. Only events whose order has reached a final state go: the newest event
of an order still `CREATED` carries the next `sequence`, so it must outlive any retention period.
Each batch is one short transaction touching at most `max_rows` rows, and skips rows another
transaction holds, so the relay, operators and order placement never wait on it.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection


@dataclass(frozen=True)
class RetentionBatch:
    """How much one batch may delete: events, and rows in all (events plus their deliveries and attempts)."""

    older_than_seconds: float
    max_events: int
    max_rows: int


@dataclass(frozen=True)
class DeletedBatch:
    """What one batch deleted."""

    events: int
    attempts: int
    deliveries: int = 0

    @property
    def rows(self) -> int:
        return self.events + self.deliveries + self.attempts


# The oldest events first, in the order of ix_order_events_created_at (an event is written before any
# delivery of it is sent, so one sent past retention was written past it), each checked by probes of its
# own deliveries (subqueries evaluated per event, never a join the planner could turn into a scan of every
# delivery): none to a configured destination may be other than SENT before the cut-off (a removed
# destination's hold nothing back). Then every delivery of those events is locked (SKIP LOCKED) and, as
# locked, checked again: an event goes only if all its deliveries were locked and still qualify, so a
# delivery replayed meanwhile, or being acted on, keeps its event. Then as many of them as fit `max_rows`
# with their deliveries and attempts (always at least one, or an event with many attempts would never go).
_DELETE_BATCH = text(
    """
    WITH candidate AS (
        SELECT event.id, event.event_id, event.created_at
        FROM order_events AS event
        WHERE event.created_at < now() - make_interval(secs => :older_than_seconds)
          AND (SELECT 1 FROM event_deliveries AS delivery
               WHERE delivery.id = event.id
                 AND (delivery.status <> 'SENT'
                      OR delivery.sent_at >= now() - make_interval(secs => :older_than_seconds))
                 AND delivery.destination IN (SELECT name FROM destinations WHERE removed_at IS NULL)
               LIMIT 1) IS NULL
          AND NOT EXISTS (
              SELECT FROM orders
              WHERE orders.id = CASE WHEN event.aggregate_type = 'order' THEN CAST(event.aggregate_id AS bigint) END
                AND orders.status = 'CREATED')
        ORDER BY event.created_at
        LIMIT :max_events
        FOR UPDATE OF event SKIP LOCKED
    ), locked AS (
        SELECT delivery.id
        FROM event_deliveries AS delivery
        WHERE delivery.id = ANY(ARRAY(SELECT id FROM candidate))
          AND ((delivery.status = 'SENT' AND delivery.sent_at < now() - make_interval(secs => :older_than_seconds))
               OR delivery.destination IN (SELECT name FROM destinations WHERE removed_at IS NOT NULL))
        FOR UPDATE OF delivery SKIP LOCKED
    ), ready AS (
        SELECT candidate.id, candidate.event_id, candidate.created_at, deliveries,
               (SELECT count(*) FROM delivery_attempts AS attempt WHERE attempt.event_id = candidate.event_id)
                   AS attempts
        FROM candidate
        CROSS JOIN LATERAL (SELECT count(*) AS deliveries FROM event_deliveries AS delivery
                            WHERE delivery.id = candidate.id) AS all_of_them
        LEFT JOIN (SELECT id, count(*) AS held FROM locked GROUP BY id) AS ours ON ours.id = candidate.id
        WHERE coalesce(ours.held, 0) = deliveries
    ), doomed AS (
        SELECT id, event_id FROM (
            SELECT id, event_id,
                   sum(1 + deliveries + attempts) OVER (ORDER BY created_at, id) AS rows_so_far,
                   row_number() OVER (ORDER BY created_at, id) AS position
            FROM ready
        ) AS counted
        WHERE rows_so_far <= :max_rows OR position = 1
    ), attempts_deleted AS (
        DELETE FROM delivery_attempts AS attempt USING doomed WHERE attempt.event_id = doomed.event_id
        RETURNING 1
    ), deliveries_deleted AS (
        DELETE FROM event_deliveries AS delivery USING doomed WHERE delivery.id = doomed.id
        RETURNING 1
    ), events_deleted AS (
        DELETE FROM order_events AS event USING doomed WHERE event.id = doomed.id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM events_deleted) AS events, (SELECT count(*) FROM attempts_deleted) AS attempts,
           (SELECT count(*) FROM deliveries_deleted) AS deliveries
    """
)


async def delete_sent_events_past_retention(engine: AsyncEngine, batch: RetentionBatch) -> DeletedBatch:
    """Delete one batch of events every configured destination has had SENT for longer than the retention
    period, with their deliveries and attempts, in one transaction."""
    async with autocommit_connection(engine) as connection:
        row = (
            await connection.execute(
                _DELETE_BATCH,
                {
                    "older_than_seconds": batch.older_than_seconds,
                    "max_events": batch.max_events,
                    "max_rows": batch.max_rows,
                },
            )
        ).one()
    return DeletedBatch(row.events, row.attempts, row.deliveries)
