"""The schedules of the system, as configured: each one a `ScheduledWorkflow` the worker keeps in place."""

from datetime import timedelta

from activities.payloads import RelayRun
from sneaker_orders.schedules import ScheduledWorkflow
from sneaker_orders.settings import Settings
from workflows.relay import OrderEventsRelay


def relay_run(settings: Settings) -> RelayRun:
    """The relay runs' argument: how long a run lasts, how it batches, and the server's search-attribute limits."""
    return RelayRun(
        interval_seconds=settings.relay_interval_seconds,
        batch_size=settings.relay_batch_size,
        lanes=settings.relay_lanes,
        run_seconds=settings.relay_run_seconds,
        schedule_id=settings.relay_schedule_id,
        search_attribute_value_limit_bytes=settings.temporal_search_attribute_value_limit_bytes,
        search_attributes_total_limit_bytes=settings.temporal_search_attributes_total_limit_bytes,
    )


def relay_schedule(settings: Settings) -> ScheduledWorkflow:
    """The relay: a run about every RELAY_RUN_SECONDS (on a tick every RELAY_INTERVAL_SECONDS) claims and delivers."""
    interval, length = settings.relay_interval_seconds, settings.relay_run_seconds
    return ScheduledWorkflow(
        schedule_id=settings.relay_schedule_id,
        workflow=OrderEventsRelay.run,
        argument=relay_run(settings),
        every=timedelta(seconds=interval),
        task_queue=settings.temporal_task_queue,
        # A healthy run lasts about max(interval, run length); what a timed-out run had claimed comes back on
        # lease expiry.
        run_timeout=timedelta(seconds=max(interval, length) + max(60, 10 * interval)),
        summary=(
            f"Order events relay: runs of about {length:g} s on {interval:g} s ticks, "
            f"batches of {settings.relay_batch_size} in up to {settings.relay_lanes} lanes"
        ),
    )


def system_schedules(settings: Settings) -> list[ScheduledWorkflow]:
    """Every schedule the worker creates or updates at start."""
    return [relay_schedule(settings)]
