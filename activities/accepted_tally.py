"""Accepted answers on a closed breaker, counted in the worker and written to the breaker's row in one statement
at most every `flush_seconds`, instead of one per recorded group.

An all-accepted group on a closed breaker changes nothing that a judgement needs at once: it cannot open
the breaker, and cannot close it (only a probe does, and a probe's group is always noted at once). So its
count, its latest send time and the reset of the failures in a row can wait a fraction of the breaker's
window. They never wait behind a failure: any group with a failure, or a probe's, flushes the tally first,
so a worker's own judgements see every answer it received. Other workers see them at most `flush_seconds`
late (a tenth of the default 1 s window).
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from db.outbox.breaker import BreakerChange, BreakerRule, note_accepted

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1


class AcceptedTally:
    """One worker's accepted answers not yet written to the platform's breaker; `on_change` hears each flush."""

    def __init__(
        self,
        engine: AsyncEngine,
        platform: str,
        rule: BreakerRule,
        on_change: Callable[[BreakerChange], None],
        *,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._rule = rule
        self._on_change = on_change
        self._flush_seconds = flush_seconds
        self._answers = 0
        self._latest_sent_at: datetime | None = None
        self.accepted_sent_at: datetime | None = None  # the latest known across workers, as of the last flush
        self._flush_task: asyncio.Task | None = None
        self._writing = asyncio.Lock()  # a flush waits for one under way: its answers are noted before a failure

    def add(self, sent_ats: list[datetime]) -> BreakerChange:
        """Count accepted answers; written within `flush_seconds`. The breaker as this worker knows it: CLOSED."""
        latest = max(sent_ats)
        self._answers += len(sent_ats)
        self._latest_sent_at = max(latest, self._latest_sent_at or latest)
        self.accepted_sent_at = max(latest, self.accepted_sent_at or latest)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_later())
        return BreakerChange("CLOSED", closed_now=False, opened_now=False, accepted_sent_at=self.accepted_sent_at)

    async def flush(self) -> None:
        """Write what was counted now (before a failure or a probe is noted, and when the worker stops)."""
        async with self._writing:
            if not self._answers:
                return
            answers, latest, self._answers, self._latest_sent_at = self._answers, self._latest_sent_at, 0, None
            change = await note_accepted(self._engine, self._platform, self._rule, answers, latest)
            if change.accepted_sent_at is not None:
                self.accepted_sent_at = max(change.accepted_sent_at, self.accepted_sent_at or change.accepted_sent_at)
            self._on_change(change)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        try:
            await self.flush()
        except Exception as failure:  # the counts are lost, not the deliveries: say so, go on
            log.warning("could not write accepted answers to the breaker of %s: %s", self._platform, failure)
