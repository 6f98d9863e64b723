"""The activities of re-runs started from Temporal: replay SENT events, redrive FAILED ones, one bounded batch each.

Each batch is one transaction of `db/outbox/operator_actions.py`, which changes the events and writes
their audit rows (`operator_actions`) together, exactly as `sneaker-orders events replay|redrive` does.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from db.outbox.operator_actions import ActedBatch, ReplaySelection, redrive_failed_batch, replay_sent_batch


@dataclass
class RerunBatch:
    """One batch of a re-run: at most `limit` selected events past outbox id `after_id`, done as `requested_by`.

    `order_id`, `event_id`, `since` and `until` (ISO 8601) select the events; none of them: every
    event of the status the action takes.
    """

    requested_by: str
    after_id: int = 0
    limit: int = 500
    order_id: int | None = None
    event_id: str | None = None
    since: str | None = None
    until: str | None = None

    def selection(self) -> ReplaySelection:
        return ReplaySelection(
            order_id=self.order_id,
            event_id=uuid.UUID(self.event_id) if self.event_id else None,
            since=datetime.fromisoformat(self.since) if self.since else None,
            until=datetime.fromisoformat(self.until) if self.until else None,
        )


@dataclass
class RerunBatchDone:
    """The events one batch acted on, oldest first; where the next starts; `more` when the batch was full."""

    event_ids: list[str]
    last_id: int
    more: bool


class EventRerunActivities:
    """Activities bound to the worker's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    async def replay_sent_events(self, batch: RerunBatch) -> RerunBatchDone:
        """Queue a batch of the selected SENT events for delivery again (same event ids), each audited as a REPLAY."""
        acted = await replay_sent_batch(
            self._engine,
            batch.selection(),
            requested_by=batch.requested_by,
            after_id=batch.after_id,
            limit=batch.limit,
        )
        return _done(acted, batch)

    @activity.defn
    async def redrive_failed_events(self, batch: RerunBatch) -> RerunBatchDone:
        """Put a batch of the selected FAILED events back to PENDING, due now, each audited as a REDRIVE."""
        acted = await redrive_failed_batch(
            self._engine,
            batch.selection(),
            requested_by=batch.requested_by,
            after_id=batch.after_id,
            limit=batch.limit,
        )
        return _done(acted, batch)


def _done(acted: ActedBatch, batch: RerunBatch) -> RerunBatchDone:
    return RerunBatchDone(acted.event_ids, acted.last_id, more=len(acted.event_ids) == batch.limit)
