"""The drop: a limited release, thousands of distinct buyers at once, against the service and the bare peer.

    .venv/bin/python bench/drop.py [--pairs 100] [--rate 1000] [--seconds 10] [--no-relay] [--no-search]

Everything starts here: an embedded PostgreSQL, the Temporal dev server, the demo platform and the
worker (the relay running, as during a real drop), `sneaker-orders api` with its default settings,
and the bare peer of bench/orders.py (bench/bare_orders_api.py). For each server, one SKU with
`--pairs` pairs and max_per_customer 1, and `--rate` x `--seconds` distinct customers (a token
each) asking for one pair each, open loop (bench/open_loop.py, a process of its own with its
requests built beforehand): request n is due at n / rate seconds whatever the answers, and its
latency counts from then (a late generator is charged to the server, never hidden; its own
lateness is printed, and the latency from the request's write on its connection beside). The
service and the peer take the same generator, one after the other.

Printed per server: pairs sold (the database's stock and the 201s), answers by status and code,
p50/p99/max latency of the winners and of the rest, when the last pair went, how many winners were
among the first 2 x pairs to ask, CPU ms per request of every process of the drop (the server,
PostgreSQL, Temporal, the worker, the platform, the generator) and of everything else the machine
ran meanwhile, and the cores each used while the pairs sold (bench/cpu_sampler.py); then, unless
`--no-search`, the highest rate at which p99 of every buyer stays at or under 100 ms (rates
doubling from `--search-from`, then halved steps between the last pass and the first failure, each
a fresh drop of `--search-seconds`).
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu_sampler import CpuSampler  # noqa: E402
from bench.open_loop import http_request, run_open_loop  # noqa: E402
from bench.support import (  # noqa: E402
    BENCH_SECRETS,
    customer_tokens,
    free_port,
    postgres_cpu,
    process_cpu,
    wait_for_http,
)
from db.migrate import upgrade_to_newest  # noqa: E402
from devstack.local_postgres import libpq_url, start_embedded_postgres  # noqa: E402
from devstack.local_temporal import start_temporal_dev_server  # noqa: E402

PRICE = 239000
# Connections of the load generator (a browser each would be 10,000; the servers' sockets bound it first),
# at most; at low rates fewer, each used about every quarter second (never left idle long enough for the
# server's keep-alive or head timeout to close it under a request).
CONNECTIONS = 256
CONNECTION_REUSE_SECONDS = 0.25
P99_BAR_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100, help="pairs of the drop's SKU")
    parser.add_argument("--rate", type=float, default=1000, help="buyers per second, open loop")
    parser.add_argument("--seconds", type=float, default=10, help="how long buyers keep coming (rate x seconds buyers)")
    parser.add_argument("--pool-size", type=int, default=8, help="database connections of each server")
    parser.add_argument("--no-relay", action="store_true", help="without Temporal, worker and platform")
    parser.add_argument("--no-search", action="store_true", help="skip the search for the highest rate")
    parser.add_argument("--search-from", type=float, default=500, help="first rate of the search")
    parser.add_argument("--search-seconds", type=float, default=3, help="length of each drop of the search")
    parser.add_argument("--servers", default="service,bare_peer", help="which servers take the drop, in order")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes of each server, the generator's connections spread over them (as behind a load balancer)",
    )
    parser.add_argument(
        "--relay-paused",
        action="store_true",
        help="stop the worker (SIGSTOP) during each drop and let it deliver after: what the relay costs the drop",
    )
    parser.add_argument("--port-base", type=int, default=None, help="ports from here on (default: free ports)")
    args = parser.parse_args()
    ports = iter(range(args.port_base, args.port_base + 100)) if args.port_base else None

    def port() -> int:
        return next(ports) if ports else free_port()

    processes: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drop-") as scratch:
        scratch_dir = Path(scratch)
        url = start_embedded_postgres(scratch_dir, delete_on_exit=True)
        upgrade_to_newest(url)
        env = {**os.environ, **BENCH_SECRETS, "DATABASE_URL": url, "WORKER_METRICS_PORT": "0"}
        for variable in ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "ADMIN_TOKEN", "CUSTOMER_RATE_LIMIT_PER_SECOND"):
            env.pop(variable, None)
        try:
            sink = None if args.no_relay else _start_relay(env, scratch_dir, port, processes)
            starters = {"service": lambda: _start_api(env, args, scratch_dir, port, processes)}
            starters["bare_peer"] = lambda: _start_peer(url, args, port, processes)
            servers = {name: starters[name]() for name in args.servers.split(",")}
            # Every process of the machine's share of the drop, its CPU measured beside the server's.
            watched = {"postgres": psutil.Process(_postmaster_pid(scratch_dir))}
            relay = [name for name in ("temporal", "worker", "sink") if name in processes]
            watched |= {name: psutil.Process(processes[name].pid) for name in relay}
            report = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "settings": {key: getattr(args, key) for key in ("pairs", "rate", "seconds", "pool_size", "processes")},
                "relay_running": not args.no_relay and not args.relay_paused,
                "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                "drop": {},
            }
            for name, server in servers.items():  # warm-up: connections, prepared statements, the catalog cache
                _drop(url, server, watched, pairs=5, rate=200, seconds=1, prefix=f"warm-{name}")
            for name, server in servers.items():
                report["drop"][name] = _drop(
                    url,
                    server,
                    watched,
                    pairs=args.pairs,
                    rate=args.rate,
                    seconds=args.seconds,
                    prefix=name,
                    paused=_paused(args, watched),
                )
            print(_table(report), file=sys.stderr, flush=True)
            if sink is not None and "service" in servers:
                report["delivered_order_created"] = _delivered(sink, report["drop"]["service"]["sold"])
            if not args.no_search:
                report["highest_rate_p99_under_100ms"] = {
                    name: _highest_rate(url, server, watched, args, name) for name, server in servers.items()
                }
            report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        finally:
            for process in processes.values():
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(_table(report))
    print(json.dumps(report, indent=2))


def _drop(
    url: str, server, watched: dict, *, pairs: int, rate: float, seconds: float, prefix: str, paused: list = ()
) -> dict:
    """One release of `pairs` pairs to rate x seconds distinct buyers: what they got, how fast, at what CPU."""
    product = _new_drop_sku(url, pairs, prefix)
    buyers = int(rate * seconds)
    host, port = server.addresses[0]
    body = json.dumps({"items": [{"product_id": product, "quantity": 1}]}).encode()
    requests = [
        http_request(
            "POST",
            "/orders",
            f"{host}:{port}",
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            body,
        )
        for token in customer_tokens(f"{prefix}-buyer", buyers)
    ]
    serving = [psutil.Process(process.pid) for process in server.processes]
    readers = {"server": partial(_servers_cpu, serving)}
    readers |= {name: partial(_cpu, name, process) for name, process in watched.items()}
    with CpuSampler(readers) as sampler, _stopped(paused):
        connections = min(CONNECTIONS, max(16, int(rate * CONNECTION_REUSE_SECONDS)))
        run = run_open_loop(server.addresses, requests, rate, connections)
    with psycopg.connect(libpq_url(url)) as connection:
        stock = connection.execute("SELECT stock FROM products WHERE id = %s", (product,)).fetchone()[0]
    answers = [
        {
            "number": number,
            "status": run.statuses[number],
            "code": _code(run.statuses[number], run.bodies[number]),
            "ms": 1000 * (run.done[number] - run.due[number]),
            "server_ms": 1000 * (run.done[number] - run.written[number]),
            "done_s": run.done[number],
        }
        for number in range(buyers)
    ]
    winners = [answer for answer in answers if answer["status"] == 201]
    rest = [answer for answer in answers if answer["status"] != 201]
    first_2x = sum(1 for answer in winners if answer["number"] < 2 * pairs)
    last_pair_went = max((answer["done_s"] for answer in winners), default=0.0)
    ended = max(run.done)
    return {
        "buyers": buyers,
        "pairs": pairs,
        "sold": pairs - stock,
        "answered_201": len(winners),
        "answers": dict(Counter(answer["code"] for answer in answers).most_common()),
        "server_errors": sum(1 for answer in answers if answer["status"] >= 500),
        "no_answer": sum(1 for answer in answers if answer["status"] == 0),
        "winners_ms": _latencies([answer["ms"] for answer in winners]),
        "rest_ms": _latencies([answer["ms"] for answer in rest]),
        "every_buyer_ms": _latencies([answer["ms"] for answer in answers]),
        # From the request's write on its connection to its answer: the server alone, without the
        # generator's lateness nor the wait for a free connection.
        "every_buyer_from_write_ms": _latencies([answer["server_ms"] for answer in answers]),
        "last_pair_went_s": round(last_pair_went, 3),
        "winners_among_first_2x_pairs": first_2x,
        "winners_among_first_2x_pairs_share": round(first_2x / max(1, len(winners)), 3),
        "generator_lateness_ms": _latencies([1000 * (d - due) for d, due in zip(run.dispatched, run.due, strict=True)]),
        "waited_for_a_connection_ms": _latencies(
            [1000 * (w - d) for w, d in zip(run.written, run.dispatched, strict=True)]
        ),
        "cpu_ms_per_request": {
            name: round(1000 * seconds / buyers, 3) for name, seconds in _cpu_used(sampler, run, 0, ended).items()
        },
        "cores_busy_whole_drop": _cores(sampler, run, 0, ended),
        # While the pairs sell, every buyer who comes waits for the product's row: the window that sets p99.
        "cores_busy_while_pairs_sell": _cores(sampler, run, 0, last_pair_went),
    }


def _cpu_used(sampler: CpuSampler, run, start: float, end: float) -> dict[str, float]:
    """CPU seconds of each process, the generator, and the rest of the machine between two instants of the run."""
    used = sampler.used(run.started_at + start, run.started_at + end)
    used["generator"] = _generator_cpu(run.generator_cpu, end) - _generator_cpu(run.generator_cpu, start)
    machine = used.pop("machine")
    used["everything_else_on_the_machine"] = max(0.0, machine - sum(used.values()))
    return used


def _cores(sampler: CpuSampler, run, start: float, end: float) -> dict[str, float]:
    if end <= start:
        return {}
    return {name: round(seconds / (end - start), 2) for name, seconds in _cpu_used(sampler, run, start, end).items()}


def _generator_cpu(notes: list[tuple[float, float]], instant: float) -> float:
    """The generator's CPU seconds at `instant` (seconds from the start): its first note at or after it."""
    for noted_at, seconds in notes:
        if noted_at >= instant:
            return seconds
    return notes[-1][1]


def _paused(args, watched: dict) -> list[psutil.Process]:
    """The processes to stop during each drop: the worker's, with --relay-paused."""
    return [watched["worker"]] if args.relay_paused and "worker" in watched else []


@contextmanager
def _stopped(processes: list[psutil.Process]):
    """While the drop runs, `processes` (and their children) stopped; continued afterwards."""
    stopped = [tree for process in processes for tree in (process, *process.children(recursive=True))]
    for process in stopped:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in stopped:
            process.send_signal(signal.SIGCONT)


def _cpu(name: str, process: psutil.Process) -> float:
    return postgres_cpu(process) if name == "postgres" else _process_tree_cpu(process)


def _servers_cpu(processes: list[psutil.Process]) -> float:
    return sum(_process_tree_cpu(process) for process in processes)


def _process_tree_cpu(process: psutil.Process) -> float:
    total = process_cpu(process)
    for child in process.children(recursive=True):
        try:
            total += process_cpu(child)
        except psutil.NoSuchProcess:
            pass
    return total


def _code(status: int, content: bytes) -> str:
    if status == 201:
        return "201"
    try:
        return f"{status} {json.loads(content).get('code', '')}".strip()
    except (ValueError, AttributeError):
        return str(status)


def _highest_rate(url: str, server, watched: dict, args, name: str) -> dict:
    """The highest rate (of those tried) at which every buyer's p99 stays at or under 100 ms."""
    tried, rate, passed, failed = [], args.search_from, None, None
    while failed is None and rate <= 64 * args.search_from:  # up, doubling, until a rate fails
        p99 = _search_drop(url, server, watched, args, name, rate, tried)
        passed, failed = (rate, None) if p99 <= P99_BAR_MS else (passed, rate)
        rate *= 2
    while passed is None and failed > args.search_from / 16:  # or down, halving, until one passes
        rate = failed / 2
        if _search_drop(url, server, watched, args, name, rate, tried) <= P99_BAR_MS:
            passed = rate
        else:
            failed = rate
    for _ in range(2):  # two halvings between the last pass and the first failure
        if failed is None:
            break
        middle = ((passed or 0) + failed) / 2
        if _search_drop(url, server, watched, args, name, middle, tried) <= P99_BAR_MS:
            passed = middle
        else:
            failed = middle
    return {"rate": passed, "first_failing_rate": failed, "tried": tried}


def _search_drop(url, server, watched, args, name: str, rate: float, tried: list) -> float:
    seconds = max(args.search_seconds, 4 * args.pairs / rate)  # a drop: four buyers a pair at least
    result = _drop(
        url,
        server,
        watched,
        pairs=args.pairs,
        rate=rate,
        seconds=seconds,
        prefix=f"{name}-{round(rate)}",
        paused=_paused(args, watched),
    )
    p99 = result["every_buyer_ms"]["p99"]
    tried.append({"rate": round(rate), "p99_ms": p99, "sold": result["sold"], "server_errors": result["server_errors"]})
    print(f"  {name} at {rate:,.0f}/s: p99 {p99} ms, sold {result['sold']}", file=sys.stderr)
    return p99


def _latencies(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    values = sorted(values)
    at = lambda share: round(values[min(len(values) - 1, int(len(values) * share))], 1)  # noqa: E731
    return {"count": len(values), "p50": at(0.5), "p99": at(0.99), "max": round(values[-1], 1)}


def _new_drop_sku(url: str, pairs: int, prefix: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        return connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock, max_per_customer)"
            " VALUES (%s, 'Drop', 'Bench', '270', %s, %s, 1) RETURNING id",
            (f"DROP-{prefix}-{time.monotonic_ns()}", PRICE, pairs),
        ).fetchone()[0]


def _start_relay(env: dict, scratch_dir: Path, port, processes: dict) -> str:
    """Temporal, the demo platform and the worker, started into `processes`; the platform's URL."""
    temporal_port, ui_port, sink_port = port(), port(), port()
    processes["temporal"] = start_temporal_dev_server(scratch_dir / "temporal", port=temporal_port, ui_port=ui_port)
    env.update(
        {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "EXTERNAL_PLATFORM_URL": f"http://127.0.0.1:{sink_port}",
        }
    )
    processes["sink"] = _start(["sink", "--port", str(sink_port)], env, scratch_dir / "sink.log")
    sink = f"http://127.0.0.1:{sink_port}"
    wait_for_http(f"{sink}/stats")
    processes["worker"] = _start(["worker"], env, scratch_dir / "worker.log")
    return sink


@dataclass
class _Server:
    """The processes of one server under test and the addresses they listen on."""

    processes: list[subprocess.Popen] = field(default_factory=list)
    addresses: list[tuple[str, int]] = field(default_factory=list)


def _start_api(env: dict, args, scratch_dir: Path, port, processes: dict) -> _Server:
    environment = {**env, "DATABASE_POOL_SIZE": str(args.pool_size), "DATABASE_POOL_MAX_OVERFLOW": "0"}
    server = _Server()
    for number in range(args.processes):
        listening = port()
        process = _start(["api", "--port", str(listening)], environment, scratch_dir / f"api-{number}.log")
        processes[f"service-{number}"] = process
        server.processes.append(process)
        server.addresses.append(("127.0.0.1", listening))
    for host, listening in server.addresses:
        wait_for_http(f"http://{host}:{listening}/readyz")
    return server


def _start_peer(url: str, args, port, processes: dict) -> _Server:
    server = _Server()
    for number in range(args.processes):
        listening = port()
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare_orders_api.py")), "--port", str(listening)]
            + ["--database-url", url, "--pool-size", str(args.pool_size)],
            stdout=subprocess.DEVNULL,
        )
        processes[f"bare_peer-{number}"] = process
        server.processes.append(process)
        server.addresses.append(("127.0.0.1", listening))
    for host, listening in server.addresses:
        wait_for_http(f"http://{host}:{listening}/openapi.json")
    return server


def _start(arguments: list[str], env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "cli.main", *arguments]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _delivered(sink: str, sold: int, timeout: float = 60) -> dict:
    """How many of the service's OrderCreated events the platform received (waiting up to `timeout` s for all)."""
    deadline, received = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        events = httpx.get(f"{sink}/events").json()
        received = sum(
            1
            for event in events
            if event["body"]["event_type"] == "OrderCreated"
            and str(event["body"]["payload"].get("customer_id", "")).startswith("service-buyer")
        )
        if received >= sold:
            break
        time.sleep(0.5)
    return {"sold": sold, "received": received}


def _postmaster_pid(scratch_dir: Path) -> int:
    return int((scratch_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def _table(report: dict) -> str:
    lines = []
    for name, run in report["drop"].items():
        winners, rest = run["winners_ms"], run["rest_ms"]
        lines += [
            f"{name}: {run['buyers']:,} buyers at {report['settings']['rate']:,.0f}/s for {run['pairs']} pairs",
            f"  sold {run['sold']} (201: {run['answered_201']}), 5xx {run['server_errors']},"
            f" no answer {run['no_answer']}; answers {run['answers']}",
            f"  winners p50/p99/max {winners['p50']} / {winners['p99']} / {winners['max']} ms;"
            f" the rest {rest['p50']} / {rest['p99']} / {rest['max']} ms;"
            f" every buyer p99 {run['every_buyer_ms']['p99']} ms",
            f"  last pair went at {run['last_pair_went_s']} s; winners among the first {2 * run['pairs']} to ask:"
            f" {run['winners_among_first_2x_pairs']} ({100 * run['winners_among_first_2x_pairs_share']:.0f} %)",
            f"  from the request's write to its answer (the server alone): every buyer p50/p99/max"
            f" {_three(run['every_buyer_from_write_ms'])} ms;"
            f" waited for a free connection {_three(run['waited_for_a_connection_ms'])} ms",
            f"  the generator's own lateness p50/p99/max {_three(run['generator_lateness_ms'])} ms",
            "  CPU ms per request: " + ", ".join(f"{who} {ms}" for who, ms in run["cpu_ms_per_request"].items()),
            "  cores busy while the pairs sold: "
            + ", ".join(f"{who} {cores}" for who, cores in run["cores_busy_while_pairs_sell"].items()),
            "  cores busy over the whole drop: "
            + ", ".join(f"{who} {cores}" for who, cores in run["cores_busy_whole_drop"].items()),
        ]
    if "delivered_order_created" in report:
        delivered = report["delivered_order_created"]
        lines.append(f"relay: {delivered['received']} of {delivered['sold']} OrderCreated events delivered")
    for name, found in report.get("highest_rate_p99_under_100ms", {}).items():
        lines.append(
            f"highest rate with p99 <= 100 ms, {name}: {found['rate']} /s"
            f" (first failing: {found['first_failing_rate']})"
        )
    return "\n".join(lines)


def _three(latencies: dict) -> str:
    return f"{latencies['p50']} / {latencies['p99']} / {latencies['max']}"


if __name__ == "__main__":
    main()
