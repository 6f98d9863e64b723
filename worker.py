"""The Temporal worker: wires the relay workflow to its activity and keeps the system's schedules in place.

Run it as `python worker.py` or `sneaker-orders worker`.
"""

import asyncio
import gc
import logging
import os
import signal
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.event_reruns import EventRerunActivities
from activities.order_expiry import OrderExpiryActivities
from activities.outbox_retention import OutboxRetentionActivities
from activities.platform import PlatformClient, PlatformEndpoint
from activities.platform_transport import create_transport
from activities.relay import STRAGGLER_CONNECTIONS_PER_SLOT, RelayActivities
from activities.schedule_pause import SchedulePauseWatch
from db.engine import create_engine_from_settings
from db.outbox.breaker import ensure_breaker
from db.outbox.destinations import DestinationRoute, register_destinations
from sneaker_orders.settings import Settings
from sneaker_orders.tracing import temporal_interceptors
from sneaker_orders.worker_metrics import serve_worker_metrics, temporal_runtime
from workflows.event_reruns import RedriveEvents, ReplayOrderEvents
from workflows.order_expiry import OrderExpiry
from workflows.outbox_retention import OutboxRetention
from workflows.relay import OrderEventsRelay
from workflows.schedules import ensure_schedule, ensure_search_attributes
from workflows.system_schedules import system_schedules

log = logging.getLogger("sneaker_orders.worker")


async def run_worker(settings: Settings) -> None:
    """Serve the relay on TEMPORAL_TASK_QUEUE until SIGTERM or SIGINT."""
    runtime, sdk_metrics = temporal_runtime()
    client = await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        runtime=runtime,
        # Workflow and activity spans while tracing (sneaker_orders/tracing.py); none otherwise.
        interceptors=temporal_interceptors(),
    )
    await ensure_search_attributes(client, settings.temporal_namespace)
    for scheduled in system_schedules(settings):
        await ensure_schedule(client, scheduled)
    engine = create_engine_from_settings(settings, application_name="sneaker-orders-worker")
    destinations = settings.destinations()
    await register_destinations(
        engine, [DestinationRoute(destination.name, destination.event_types) for destination in destinations]
    )
    endpoints = [PlatformEndpoint.of(destination) for destination in destinations]
    for endpoint in endpoints:
        await ensure_breaker(engine, endpoint.name)
    # Requests slow to answer give their slot to others (activities/relay.py) but keep their connection. Each
    # destination has its own connections: one that hangs never takes another's.
    connections = settings.relay_delivery_concurrency * STRAGGLER_CONNECTIONS_PER_SLOT
    transports = [create_transport(settings.relay_http_transport, max_connections=connections) for _ in endpoints]
    platforms = [
        PlatformClient(transport, endpoint, timeout_seconds=settings.relay_http_timeout_seconds)
        for transport, endpoint in zip(transports, endpoints, strict=True)
    ]
    pause = SchedulePauseWatch(client)
    relay = RelayActivities(engine, platforms, settings, pause)
    expiry = OrderExpiryActivities(engine, pause)
    retention = OutboxRetentionActivities(engine, pause)
    reruns = EventRerunActivities(engine)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[OrderEventsRelay, OrderExpiry, OutboxRetention, ReplayOrderEvents, RedriveEvents],
        activities=[
            relay.relay_due_events,
            expiry.expire_due_orders,
            retention.delete_sent_events_past_retention,
            retention.purge_expired_replay_records,
            reruns.replay_sent_events,
            reruns.redrive_failed_events,
        ],
        # In-flight deliveries get this long to finish on SIGTERM/SIGINT; after that they are
        # cancelled, record what they learnt and hand their remaining claims back.
        graceful_shutdown_timeout=timedelta(seconds=settings.relay_shutdown_grace_seconds),
        # A run whose worker went away waits this long before another worker takes it over; while it
        # waits, it holds the schedule (overlap SKIP). The default (10 s) stalls relaying for that long.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=2),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Everything built so far lives as long as the process: keep it out of the garbage collector's scans.
    gc.collect()
    gc.freeze()
    try:
        async with serve_worker_metrics(settings.worker_metrics_port, sdk_metrics), worker:
            log.info(
                "relaying to %s on task queue %s (schedule %s, Temporal %s)",
                ", ".join(f"{endpoint.name} ({endpoint.address})" for endpoint in endpoints),
                settings.temporal_task_queue,
                settings.relay_schedule_id,
                settings.temporal_target,
            )
            await stop.wait()
            log.info("shutting down: in-flight deliveries get %ss to finish", settings.relay_shutdown_grace_seconds)
    finally:
        for transport in transports:
            await transport.aclose()
        await engine.dispose()


def main() -> None:
    """Entry point of `python worker.py`: the same as `sneaker-orders worker`.

    The console script lives on the floor above this module, so the process becomes it (exec)
    rather than importing it.
    """
    os.execv(sys.executable, [sys.executable, "-m", "cli.main", "worker"])


if __name__ == "__main__":
    main()
