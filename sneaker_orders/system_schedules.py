"""The schedules of the system, as configured: each one a `ScheduledWorkflow` the worker keeps in place."""

from datetime import timedelta

from activities.payloads import RelayRun
from sneaker_orders.schedules import ScheduledWorkflow
from sneaker_orders.settings import Settings
from workflows.relay import OrderEventsRelay


def relay_schedule(settings: Settings) -> ScheduledWorkflow:
    """The relay: every RELAY_INTERVAL_SECONDS, a run claims and delivers due events."""
    interval = settings.relay_interval_seconds
    return ScheduledWorkflow(
        schedule_id=settings.relay_schedule_id,
        workflow=OrderEventsRelay.run,
        argument=RelayRun(interval_seconds=interval, batch_size=settings.relay_batch_size, lanes=settings.relay_lanes),
        every=timedelta(seconds=interval),
        task_queue=settings.temporal_task_queue,
        # A healthy run lasts about one interval; what a timed-out run had claimed comes back on lease expiry.
        run_timeout=timedelta(seconds=max(60, 10 * interval)),
    )


def system_schedules(settings: Settings) -> list[ScheduledWorkflow]:
    """Every schedule the worker creates or updates at start."""
    return [relay_schedule(settings)]
