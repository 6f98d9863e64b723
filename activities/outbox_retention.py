"""The retention's activities: delete SENT events past retention and purge expired idempotency keys, batch by batch.

Each activity works through short batches (each its own transaction) for a few seconds, looking at
the schedule's pause state before every batch, then reports back so the run's history shows progress.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.idempotency_keys import purge_expired_idempotency_keys
from activities.schedule_pause import SchedulePauseWatch
from db.outbox.retention import RetentionBatch, delete_sent_events_past_retention

KeyPurge = Callable[..., Awaitable[int | None]]


@dataclass
class DeleteSentEvents:
    """Delete SENT events delivered more than `older_than_seconds` ago, in batches, for about `work_seconds`."""

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
    largest_batch_rows: int = 0
    longest_batch_seconds: float = 0.0
    done: bool = False
    paused: bool = False


@dataclass
class PurgeIdempotencyKeys:
    """Purge expired idempotency keys, `keys_per_batch` at a time, for about `work_seconds`."""

    keys_per_batch: int
    schedule_id: str | None = None
    work_seconds: float = 10.0


@dataclass
class PurgedIdempotencyKeys:
    """What one activity purged; `available` is False where this build cannot purge keys."""

    keys: int = 0
    batches: int = 0
    done: bool = False
    paused: bool = False
    available: bool = True


class OutboxRetentionActivities:
    """Activities bound to the worker's engine, its view of the schedules' pause state, and the key purge."""

    def __init__(
        self, engine: AsyncEngine, pause: SchedulePauseWatch, purge_keys: KeyPurge = purge_expired_idempotency_keys
    ) -> None:
        self._engine = engine
        self._pause = pause
        self._purge_keys = purge_keys

    @activity.defn
    async def delete_sent_events_past_retention(self, request: DeleteSentEvents) -> DeletedSentEvents:
        """Delete batches of old SENT events with their attempts until none is left, time is up, or a pause."""
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
            deleted.batches += 1
            deleted.largest_batch_rows = max(deleted.largest_batch_rows, rows.rows)
            activity.heartbeat(asdict(deleted))
        return deleted

    @activity.defn
    async def purge_expired_idempotency_keys(self, request: PurgeIdempotencyKeys) -> PurgedIdempotencyKeys:
        """Purge batches of expired idempotency keys until none is left, time is up, or a pause."""
        details = activity.info().heartbeat_details
        purged = PurgedIdempotencyKeys(**details[0]) if details else PurgedIdempotencyKeys()
        stop_at = time.monotonic() + request.work_seconds
        while time.monotonic() < stop_at:
            if await self._pause.is_paused(request.schedule_id):
                purged.paused = True
                break
            keys = await self._purge_keys(self._engine, limit=request.keys_per_batch)
            if keys is None:
                return PurgedIdempotencyKeys(done=True, available=False)
            if not keys:
                purged.done = True
                break
            purged.keys += keys
            purged.batches += 1
            activity.heartbeat(asdict(purged))
        return purged
