"""The Temporal schedule that starts the relay every RELAY_INTERVAL_SECONDS, created or updated by the worker."""

import dataclasses
import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.payloads import RelayRun
from sneaker_orders.settings import Settings
from workflows.relay import OrderEventsRelay

log = logging.getLogger(__name__)


def relay_schedule(settings: Settings) -> Schedule:
    """The schedule as configured (paused state aside)."""
    interval = settings.relay_interval_seconds
    return Schedule(
        action=ScheduleActionStartWorkflow(
            OrderEventsRelay.run,
            RelayRun(
                interval_seconds=interval,
                batch_size=settings.relay_batch_size,
                lanes=settings.relay_lanes,
            ),
            id=f"{settings.relay_schedule_id}-run",
            task_queue=settings.temporal_task_queue,
            # A run that hangs must not hold the schedule (overlap SKIP) for long; a healthy one
            # lasts about one interval. What a timed-out run had claimed comes back on lease expiry.
            run_timeout=timedelta(seconds=max(60, 10 * interval)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval))]),
        # After Temporal was down, one catch-up run is enough: each run drains what is due.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=1)),
    )


async def ensure_relay_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule, or bring an existing one up to date while keeping its paused state and note."""
    schedule = relay_schedule(settings)
    try:
        await client.create_schedule(settings.relay_schedule_id, schedule)
        log.info("created schedule %s (every %ss)", settings.relay_schedule_id, settings.relay_interval_seconds)
        return
    except ScheduleAlreadyRunningError:
        pass

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

    await client.get_schedule_handle(settings.relay_schedule_id).update(keep_state)
    log.info("updated schedule %s (every %ss)", settings.relay_schedule_id, settings.relay_interval_seconds)
