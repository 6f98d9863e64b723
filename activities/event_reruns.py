"""The activities of re-runs started from Temporal: replay SENT deliveries, redrive FAILED ones, one bounded batch
each, to one destination.

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
    event of the status the action takes. `destination` is the destination whose deliveries are acted on
    (a name that is not configured raises DestinationNotFound, which the workflows do not retry).
    """

    requested_by: str
    after_id: int = 0
    limit: int = 500
    order_id: int | None = None
    event_id: str | None = None
    since: str | None = None
    until: str | None = None
    destination: str = "platform"

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
        """Queue a batch of the selected events for delivery to the destination again (same event ids; a delivery
        created for those it has none of), each audited as a REPLAY."""
        acted = await replay_sent_batch(
            self._engine,
            batch.selection(),
            destination=batch.destination,
            requested_by=batch.requested_by,
            after_id=batch.after_id,
            limit=batch.limit,
        )
        return _done(acted, batch)

    @activity.defn
    async def redrive_failed_events(self, batch: RerunBatch) -> RerunBatchDone:
        """Put a batch of the selected FAILED deliveries to the destination back to PENDING, due now, each audited
        as a REDRIVE."""
        acted = await redrive_failed_batch(
            self._engine,
            batch.selection(),
            destination=batch.destination,
            requested_by=batch.requested_by,
            after_id=batch.after_id,
            limit=batch.limit,
        )
        return _done(acted, batch)


def _done(acted: ActedBatch, batch: RerunBatch) -> RerunBatchDone:
    return RerunBatchDone(acted.event_ids, acted.last_id, more=acted.more)
