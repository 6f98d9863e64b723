"""Whether a schedule is paused, as the activities of its runs see it: paused means change nothing.

`temporal schedule toggle --pause` only stops new runs; a run already going would keep working.
Its activities therefore look at the schedule's state (at most every `cache_seconds`) and stop
before any state change once it is paused, so a pause takes effect within about a second.
"""

import logging
import time

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


class SchedulePauseWatch:
    """Reads schedules' paused state through the Temporal client, remembering each answer briefly."""

    def __init__(self, client: Client, *, cache_seconds: float = 0.5) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._known: dict[str, tuple[float, bool]] = {}

    async def is_paused(self, schedule_id: str | None) -> bool:
        """True while `schedule_id` is paused; a run with no schedule (started by hand) is never paused."""
        if not schedule_id:
            return False
        now = time.monotonic()
        known = self._known.get(schedule_id)
        if known is not None and now - known[0] < self._cache_seconds:
            return known[1]
        try:
            description = await self._client.get_schedule_handle(schedule_id).describe()
            paused = description.schedule.state.paused
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                paused = False
            elif known is not None:
                # Temporal is unreachable for a moment: the last known state is the best guess.
                log.warning(
                    "could not read schedule %s (%s); assuming it is still %s",
                    schedule_id,
                    error,
                    "paused" if known[1] else "running",
                )
                return known[1]
            else:
                raise
        self._known[schedule_id] = (now, paused)
        return paused
