"""The schedules of the system, as configured: each one a `ScheduledWorkflow` the worker keeps in place."""

from datetime import timedelta

from activities.payloads import RelayRun
from sneaker_orders.settings import Settings
from workflows.order_expiry import OrderExpiry, OrderExpiryRun
from workflows.outbox_retention import OutboxRetention, OutboxRetentionRun
from workflows.relay import OrderEventsRelay
from workflows.schedules import ScheduledWorkflow


def relay_run(settings: Settings) -> RelayRun:
    """The relay runs' argument, from Settings only: run length, requests in flight per lane, lanes, destinations."""
    return RelayRun(
        interval_seconds=settings.relay_interval_seconds,
        batch_size=settings.relay_batch_size,
        lanes=settings.relay_lanes,
        run_seconds=settings.relay_run_seconds,
        schedule_id=settings.relay_schedule_id,
        destinations=[destination.name for destination in settings.destinations()],
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
            f"up to {settings.relay_batch_size} requests in flight in each of up to {settings.relay_lanes} lanes"
        ),
    )


def order_expiry_schedule(settings: Settings) -> ScheduledWorkflow:
    """Order expiry: every ORDER_EXPIRY_INTERVAL_SECONDS, a run expires the unpaid orders past their deadline."""
    interval = settings.order_expiry_interval_seconds
    return ScheduledWorkflow(
        schedule_id=settings.order_expiry_schedule_id,
        workflow=OrderExpiry.run,
        argument=OrderExpiryRun(schedule_id=settings.order_expiry_schedule_id),
        every=timedelta(seconds=interval),
        task_queue=settings.temporal_task_queue,
        # A run lasts as long as its orders take (milliseconds each); a stuck one must not hold the schedule.
        run_timeout=timedelta(seconds=max(60, 10 * interval)),
        summary="Order expiry: unpaid orders past their payment deadline give back stock and coupon uses",
    )


def retention_schedule(settings: Settings) -> ScheduledWorkflow:
    """Retention: every RETENTION_INTERVAL_SECONDS (hourly), old SENT events and expired idempotency keys go."""
    return ScheduledWorkflow(
        schedule_id=settings.retention_schedule_id,
        workflow=OutboxRetention.run,
        argument=OutboxRetentionRun(
            schedule_id=settings.retention_schedule_id, retention_days=settings.outbox_retention_days
        ),
        every=timedelta(seconds=settings.retention_interval_seconds),
        task_queue=settings.temporal_task_queue,
        # A run continues as new every few minutes of work; each batch it finished stays done.
        run_timeout=timedelta(hours=1),
        summary=f"Outbox retention: SENT events older than {settings.outbox_retention_days:g} days, expired "
        "idempotency keys",
    )


def system_schedules(settings: Settings) -> list[ScheduledWorkflow]:
    """Every schedule the worker creates or updates at start."""
    return [relay_schedule(settings), order_expiry_schedule(settings), retention_schedule(settings)]
