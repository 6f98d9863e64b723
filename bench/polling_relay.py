"""The peer of the Temporal relay in bench/relay.py: a plain polling relay, no Temporal, same client and statements.

    .venv/bin/python bench/polling_relay.py   (configured by the same environment variables as the worker)

Lanes claim due events (the relay's claim), send them through the relay's PlatformClient (the same
httpx transport, request template, deadline and bounded read) and record the attempts (the relay's
record statement). What it leaves out is what Temporal adds: orchestration, heartbeats, search
attributes, the breaker and pause checks. The Temporal relay's throughput over this one's is the
cost of that orchestration.
"""

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.delivery_rules import DeliveryPolicy  # noqa: E402
from activities.platform import PlatformClient, PlatformEndpoint  # noqa: E402
from activities.platform_transport import create_transport  # noqa: E402
from db.engine import create_engine  # noqa: E402
from db.outbox.claims import Claim, claim_due_events  # noqa: E402
from db.outbox.outcomes import AttemptOutcome, Run, record_attempts  # noqa: E402
from sneaker_orders.settings import Settings  # noqa: E402

RUN = Run("polling-relay", "polling-relay")
POLL_SECONDS = 0.05


async def relay(settings: Settings) -> None:
    """Relay until SIGTERM, in RELAY_LANES lanes of RELAY_BATCH_SIZE."""
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size, application_name="polling")
    transport = create_transport(settings.relay_http_transport, max_connections=settings.relay_delivery_concurrency)
    endpoint = PlatformEndpoint.of(settings.destinations()[0])
    platform = PlatformClient(transport, endpoint, timeout_seconds=settings.relay_http_timeout_seconds)
    policy = DeliveryPolicy(
        settings.relay_max_attempts, settings.relay_backoff_base_seconds, settings.relay_backoff_max_seconds
    )
    gate = asyncio.Semaphore(settings.relay_delivery_concurrency)
    claim = Claim(settings.relay_batch_size, settings.relay_lease_seconds, RUN.workflow_id, RUN.run_id, endpoint.name)

    async def send(event):
        async with gate:
            return await platform.send(event)

    async def lane() -> None:
        while True:
            events = await claim_due_events(engine, claim)
            if not events:
                await asyncio.sleep(POLL_SECONDS)
                continue
            facts = await asyncio.gather(*(send(event) for event in events))
            attempts = []
            for event, fact in zip(events, facts, strict=True):
                step = policy.next_step(fact.http_status, event.attempt, fact.retry_after_seconds)
                attempts.append(
                    AttemptOutcome(
                        fact.event_id,
                        fact.attempted_at,
                        fact.duration_ms,
                        step.verdict,
                        fact.http_status,
                        fact.error,
                        step.wait_seconds,
                    )
                )
            await record_attempts(engine, endpoint.name, str(claim.lease_token), attempts, RUN)

    lanes = [asyncio.create_task(lane()) for _ in range(settings.relay_lanes)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("polling relay ready", flush=True)
    await stop.wait()
    for task in lanes:
        task.cancel()
    await asyncio.gather(*lanes, return_exceptions=True)
    await transport.aclose()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(relay(Settings()))
