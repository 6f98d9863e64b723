"""The retention's activities: delete events delivered everywhere past retention, then purge expired replay
records, batch by batch.

Each activity works through short batches (each its own transaction) for a few seconds, looking at
the schedule's pause state before every batch, then reports back so the run's history shows progress.
"""

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.schedule_pause import SchedulePauseWatch
from db.orders.idempotency import purge_expired_idempotency_keys
from db.orders.payments import purge_answered_webhooks
from db.outbox.retention import RetentionBatch, delete_sent_events_past_retention


@dataclass
class DeleteSentEvents:
    """Delete events every configured destination has had SENT for more than `older_than_seconds`, in batches,
    for about `work_seconds`."""

    older_than_seconds: float
    events_per_batch: int
    rows_per_batch: int
    schedule_id: str | None = None
    work_seconds: float = 10.0


@dataclass
class DeletedSentEvents:
    """What one activity deleted; `done` once nothing more is past retention."""

    events: int = 0
    attempts: int = 0
    batches: int = 0
    deliveries: int = 0
    largest_batch_rows: int = 0
    longest_batch_seconds: float = 0.0
    done: bool = False
    paused: bool = False


@dataclass
class PurgeReplayRecords:
    """Purge idempotency keys past their TTL and payment-webhook answers past `webhook_answers_kept_seconds`,
    `rows_per_batch` at a time, for about `work_seconds`."""

    rows_per_batch: int
    webhook_answers_kept_seconds: float
    schedule_id: str | None = None
    work_seconds: float = 10.0


@dataclass
class PurgedReplayRecords:
    """What one activity purged; `done` once nothing more is expired."""

    keys: int = 0
    webhook_answers: int = 0
    batches: int = 0
    done: bool = False
    paused: bool = False


class OutboxRetentionActivities:
    """Activities bound to the worker's engine and its view of the schedules' pause state."""

    def __init__(self, engine: AsyncEngine, pause: SchedulePauseWatch) -> None:
        self._engine = engine
        self._pause = pause

    @activity.defn
    async def delete_sent_events_past_retention(self, request: DeleteSentEvents) -> DeletedSentEvents:
        """Delete batches of old events delivered everywhere, with their deliveries and attempts, until none is
        left, time is up, or a pause."""
        # A retried attempt goes on from what the failed one had already deleted (and committed).
        details = activity.info().heartbeat_details
        deleted = DeletedSentEvents(**details[0]) if details else DeletedSentEvents()
        batch = RetentionBatch(request.older_than_seconds, request.events_per_batch, request.rows_per_batch)
        stop_at = time.monotonic() + request.work_seconds
        while time.monotonic() < stop_at:
            if await self._pause.is_paused(request.schedule_id):
                deleted.paused = True
                break
            began = time.monotonic()
            rows = await delete_sent_events_past_retention(self._engine, batch)
            deleted.longest_batch_seconds = max(deleted.longest_batch_seconds, time.monotonic() - began)
            if not rows.events:  # nothing more is past retention
                deleted.done = True
                break
            deleted.events += rows.events
            deleted.attempts += rows.attempts
            deleted.deliveries += rows.deliveries
            deleted.batches += 1
            deleted.largest_batch_rows = max(deleted.largest_batch_rows, rows.rows)
            activity.heartbeat(asdict(deleted))
        return deleted

    @activity.defn
    async def purge_expired_replay_records(self, request: PurgeReplayRecords) -> PurgedReplayRecords:
        """Purge batches of expired keys and old webhook answers until none is left, time is up, or a pause."""
        details = activity.info().heartbeat_details
        purged = PurgedReplayRecords(**details[0]) if details else PurgedReplayRecords()
        webhook_answers_kept = timedelta(seconds=request.webhook_answers_kept_seconds)
        stop_at = time.monotonic() + request.work_seconds
        while time.monotonic() < stop_at:
            if await self._pause.is_paused(request.schedule_id):
                purged.paused = True
                break
            keys = await purge_expired_idempotency_keys(self._engine, limit=request.rows_per_batch)
            answers = await purge_answered_webhooks(
                self._engine, older_than=webhook_answers_kept, limit=request.rows_per_batch
            )
            if not keys and not answers:
                purged.done = True
                break
            purged.keys += keys
            purged.webhook_answers += answers
            purged.batches += 1
            activity.heartbeat(asdict(purged))
        return purged
