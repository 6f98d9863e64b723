"""Outbox retention: SENT events kept past their time are deleted with their attempts, one bounded batch at a time.

Only `SENT` events are ever deleted (PENDING, PROCESSING and FAILED stay whatever their age), and
only those whose order has reached a final state: the newest event of an order still `CREATED`
carries the next `sequence`, so it must outlive any retention period. Each batch is one short
transaction touching at most `max_rows` rows, and skips rows another transaction holds, so the
relay, operators and order placement never wait on it.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection


@dataclass(frozen=True)
class RetentionBatch:
    """How much one batch may delete: events, and rows in all (events plus their attempts)."""

    older_than_seconds: float
    max_events: int
    max_rows: int


@dataclass(frozen=True)
class DeletedBatch:
    """What one batch deleted."""

    events: int
    attempts: int

    @property
    def rows(self) -> int:
        return self.events + self.attempts


# The oldest deliveries first, in the order of the partial index on sent_at (no sort), then as many of
# them as fit `max_rows` with their attempts (always at least one, or an event with many attempts would
# never go).
_DELETE_BATCH = text(
    """
    WITH candidate AS (
        SELECT event.id, event.event_id, event.sent_at,
               (SELECT count(*) FROM delivery_attempts AS attempt WHERE attempt.event_id = event.event_id)
                   AS attempts
        FROM order_events AS event
        WHERE event.status = 'SENT'
          AND event.sent_at < now() - make_interval(secs => :older_than_seconds)
          AND NOT EXISTS (
              SELECT FROM orders
              WHERE orders.id = CASE WHEN event.aggregate_type = 'order' THEN CAST(event.aggregate_id AS bigint) END
                AND orders.status = 'CREATED')
        ORDER BY event.sent_at
        LIMIT :max_events
        FOR UPDATE OF event SKIP LOCKED
    ), doomed AS (
        SELECT id, event_id FROM (
            SELECT id, event_id,
                   sum(1 + attempts) OVER (ORDER BY sent_at, id) AS rows_so_far,
                   row_number() OVER (ORDER BY sent_at, id) AS position
            FROM candidate
        ) AS counted
        WHERE rows_so_far <= :max_rows OR position = 1
    ), attempts_deleted AS (
        DELETE FROM delivery_attempts AS attempt USING doomed WHERE attempt.event_id = doomed.event_id
        RETURNING 1
    ), events_deleted AS (
        DELETE FROM order_events AS event USING doomed WHERE event.id = doomed.id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM events_deleted) AS events, (SELECT count(*) FROM attempts_deleted) AS attempts
    """
)


async def delete_sent_events_past_retention(engine: AsyncEngine, batch: RetentionBatch) -> DeletedBatch:
    """Delete one batch of SENT events older than the retention period, with their attempts, in one transaction."""
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
    return DeletedBatch(row.events, row.attempts)
