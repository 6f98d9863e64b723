"""The outbox relay: started by a schedule, it claims due events and has them delivered, batch after batch."""

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.payloads import ClaimedBatch, ClaimRequest, RelayReport, RelayRun
    from activities.relay import RelayActivities

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

# Database hiccups are worth a few quick retries; after that the run fails and the schedule's next
# run starts afresh (anything still leased is given back when its lease expires).
ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
# Deliveries heartbeat after every answer (at most RELAY_HTTP_TIMEOUT_SECONDS apart): a worker that
# died mid-batch is noticed within this, and the run can finish.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
DELIVERY_TIMEOUT = timedelta(minutes=2)
SUMMARY_EVENTS = 5


@workflow.defn
class OrderEventsRelay:
    """Relays for one window, from its scheduled time, in parallel lanes; the schedule starts the next window."""

    def __init__(self) -> None:
        self._report = RelayReport()

    @workflow.run
    async def run(self, run: RelayRun) -> RelayReport:
        started = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        deadline = started + timedelta(seconds=run.window_seconds)
        await asyncio.gather(*(self._relay_until(deadline, run) for _ in range(run.lanes)))
        return self._report

    async def _relay_until(self, deadline: datetime, run: RelayRun) -> None:
        while len(self._report.events) < run.max_events:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return
            batch = await workflow.execute_activity_method(
                RelayActivities.claim_due_events,
                ClaimRequest(run.batch_size, wait_seconds=remaining),
                start_to_close_timeout=timedelta(seconds=remaining) + timedelta(seconds=30),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=f"claim up to {run.batch_size} due events",
            )
            if not batch.events:
                continue
            report = await workflow.execute_activity_method(
                RelayActivities.deliver_claimed_events,
                batch,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=_describe(batch),
            )
            self._report.batches += 1
            self._report.events.extend(report.outcomes)


def _describe(batch: ClaimedBatch) -> str:
    """The activity summary the Web UI shows: which events this delivery handles."""
    named = ", ".join(
        f"{event.event_type} #{event.sequence} of order {event.order_id} ({event.event_id})"
        for event in batch.events[:SUMMARY_EVENTS]
    )
    more = len(batch.events) - SUMMARY_EVENTS
    return f"deliver {len(batch.events)} events: {named}" + (f" and {more} more" if more > 0 else "")
