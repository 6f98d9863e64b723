"""The outbox relay: started by a schedule, it claims due events and has them delivered, batch after batch."""

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.payloads import ClaimedBatch, ClaimRequest, RelayReport, RelayRun
    from activities.relay import RelayActivities


# Database hiccups are worth a few quick retries; after that the run fails and the schedule's next
# run starts afresh (anything still leased is given back when its lease expires).
ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
# Deliveries heartbeat after every answer (at most RELAY_HTTP_TIMEOUT_SECONDS apart): a worker that
# died mid-batch is noticed within this, and the run can finish.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
DELIVERY_TIMEOUT = timedelta(minutes=2)
SUMMARY_EVENTS = 5
# A run must be over before the schedule's next tick, or that tick is skipped (overlap SKIP) and
# relaying pauses for a whole interval. Each lane therefore starts a batch only while its delivery
# (as long as the slowest this run has seen) still ends this much before the tick.
TICK_MARGIN = timedelta(milliseconds=100)
FIRST_DELIVERY_ESTIMATE = 0.1
# A run started by hand (`temporal schedule trigger`) relays at least this long, even if a tick is near.
MIN_WINDOW = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@workflow.defn
class OrderEventsRelay:
    """Relays from its start until just before the schedule's next tick, when the schedule starts the next run.

    A run works in one lane (claim a batch, deliver it, again) and opens the other `lanes` as soon
    as a claim comes back full: parallel lanes pay off only on a backlog, while under a steady
    trickle one lane batches more per activity and keeps Temporal's load low.
    """

    def __init__(self) -> None:
        self._report = RelayReport()
        self._slowest_delivery = FIRST_DELIVERY_ESTIMATE
        self._lanes: list[asyncio.Task] = []

    @workflow.run
    async def run(self, run: RelayRun) -> RelayReport:
        stop_by = _stop_by(workflow.now(), timedelta(seconds=run.interval_seconds))
        self._open_lane(stop_by, run, release_expired=True)
        # Lanes may open while others run, so wait for all of them rather than gather the first few.
        await workflow.wait_condition(lambda: all(lane.done() for lane in self._lanes))
        await asyncio.gather(*self._lanes)  # a lane that failed fails the run
        return self._report

    def _open_lane(self, stop_by: datetime, run: RelayRun, *, release_expired: bool) -> None:
        self._lanes.append(asyncio.create_task(self._relay_until(stop_by, run, release_expired=release_expired)))

    async def _relay_until(self, stop_by: datetime, run: RelayRun, *, release_expired: bool) -> None:
        """One lane: claim a batch, deliver it, and again, until the run's time is up."""
        while (claim := self._claim(stop_by, run, release_expired=release_expired)) is not None:
            release_expired = False
            batch = await claim
            if len(batch.events) == run.batch_size:  # a backlog: work on it at full width
                while len(self._lanes) < run.lanes:
                    self._open_lane(stop_by, run, release_expired=False)
            if batch.events:
                await self._deliver(batch)

    def _claim(self, stop_by: datetime, run: RelayRun, *, release_expired: bool) -> ActivityHandle | None:
        """Start claiming a batch, if a delivery started now would still end before the tick."""
        wait = (stop_by - workflow.now()).total_seconds() - self._slowest_delivery
        if wait <= 0 or len(self._report.events) >= run.max_events:
            return None
        return workflow.start_activity_method(
            RelayActivities.claim_due_events,
            ClaimRequest(run.batch_size, wait_seconds=wait, release_expired_leases=release_expired),
            start_to_close_timeout=timedelta(seconds=wait) + timedelta(seconds=30),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRIES,
            summary=f"claim up to {run.batch_size} due events",
        )

    async def _deliver(self, batch: ClaimedBatch) -> None:
        began = workflow.now()
        report = await workflow.execute_activity_method(
            RelayActivities.deliver_claimed_events,
            batch,
            start_to_close_timeout=DELIVERY_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRIES,
            summary=_describe(batch),
        )
        self._slowest_delivery = max(self._slowest_delivery, (workflow.now() - began).total_seconds())
        self._report.batches += 1
        self._report.events.update(report.outcomes)


def _stop_by(now: datetime, interval: timedelta) -> datetime:
    """When a run started `now` stops starting batches: before the schedule's next tick (interval ticks
    fall on whole multiples of the interval since the epoch), but not before MIN_WINDOW has passed."""
    next_tick = EPOCH + ((now - EPOCH) // interval + 1) * interval
    return max(next_tick - TICK_MARGIN, now + MIN_WINDOW)


def _describe(batch: ClaimedBatch) -> str:
    """The activity summary the Web UI shows: which events this delivery handles."""
    named = ", ".join(f"{what} ({event_id})" for event_id, what in list(batch.events.items())[:SUMMARY_EVENTS])
    more = len(batch.events) - SUMMARY_EVENTS
    return f"deliver {len(batch.events)} events: {named}" + (f" and {more} more" if more > 0 else "")
