"""Order throughput and API CPU per order, in one run on one fresh database: pgbench, the API, a bare peer.

    .venv/bin/python bench/orders.py [--seconds 8] [--rounds 2]          (or: make bench)

Everything starts here, on free ports: an embedded PostgreSQL with 1,000 ordinary SKUs and one
hot SKU, `sneaker-orders api` (its real settings and default limits), and bench/bare_orders_api.py
(FastAPI and raw psycopg, no features). Two mixes: low contention (a random one of the 1,000 SKUs
per order) and one hot SKU.

1. pgbench runs the statements the service sends for a one-line order without coupon or key
   (the lock statement, the guarded write and the OrderCreated append, pipelined: one round trip),
   taken from the service's own SQL text with its parameters filled in, so they cannot drift.
2. The API and the bare peer take the same load from wrk (Debian's `wrk`; without it an aiohttp
   generator in its own process, which costs CPU the servers then lack): 32 connections, one-line
   orders. The API's orders come from many customers, each with its own token, each placing
   `--orders-per-customer` orders (default 3, the unpaid orders a customer may hold; never two at
   once, 64 orders of a wrk thread apart), so the per-customer limits never bind, though every
   order is checked against them; the bench's SKUs have no max_per_customer. With 1, every order
   is a new customer (and a token never seen before). The API and the peer alternate, `--rounds` times.
3. CPU per order is the CPU time (user + system, psutil) of the server process over the load,
   divided by the orders it answered; PostgreSQL's likewise (the postmaster and every backend).

Prints a table and JSON: orders/s, p50/p99 latency, CPU ms per order (medians over the rounds),
and the ratios API/pgbench and API/peer.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_load import CUSTOMER_WINDOW, WRK_THREADS, post_orders  # noqa: E402
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

PRICE = 139000
# Every bench product's terms were last changed then: the version pgbench's write pins (db/orders/placement.py).
TERMS_CHANGED_AT = "2026-01-01 00:00:00+00"
TERMS_VERSION = 1767225600 * 1_000_000
PAYLOAD = json.dumps(
    {
        "order_id": 0,
        "status": "CREATED",
        "customer_id": "bench",
        "coupon_id": None,
        "subtotal": PRICE,
        "discount": 0,
        "total": PRICE,
        "items": [{"product_id": 1, "quantity": 1, "unit_price": PRICE, "line_total": PRICE}],
        "created_at": "2026-11-25T00:00:00Z",
        "expires_at": "2026-11-25T00:15:00Z",
        "payment_id": None,
        "confirmed_at": None,
        "cancelled_at": None,
        "expired_at": None,
    }
)  # with json's default ": ": pgbench would read ":null" in a script as a variable

# What the service binds, as pgbench expressions, for a one-line order without coupon or key by a new customer.
SERVICE_PARAMETERS = {
    "customer_id": "('bench-' || :cust)",
    "key_lock": "NULL",
    "customer_lock": "hashtextextended('bench-' || :cust, 0)",
    "product_ids": "ARRAY[:pid]",
    "quantities": "ARRAY[1]",
    "unit_prices": f"ARRAY[{PRICE}]",
    "max_per_customer": "ARRAY[NULL]::integer[]",
    "held_pairs": "ARRAY[]::integer[]",
    "terms_versions": f"ARRAY[{TERMS_VERSION}]",
    "unpaid_order_ids": "ARRAY[]::bigint[]",
    "cooldown_since": "now() - interval '30 seconds'",
    "coupon_id": "NULL",
    "coupon_terms_at": "NULL",
    "subtotal": str(PRICE),
    "discount": "0",
    "total": str(PRICE),
    "created_at": "now()",
    "expires_at": "now() + interval '15 minutes'",
    "idempotency_key": "NULL",
    "request_fingerprint": "NULL",
    "response": f"'{PAYLOAD}'",
    "key_expires_at": "now() + interval '24 hours'",
    "order_id": "NULL",
    "event_id": "gen_random_uuid()",
    "aggregate_type": "'order'",
    "event_type": "'OrderCreated'",
    "payload": f"'{PAYLOAD}'",
    "occurred_at": "now()",
    "traceparent": "NULL",
}


def _bind(sql: str) -> str:
    """`sql` (psycopg's %(name)s parameters) with the benchmark's values; a parameter it does not know stops the run."""

    def value(match: re.Match) -> str:
        if match.group(1) not in SERVICE_PARAMETERS:
            raise SystemExit(f"the order statements changed: %({match.group(1)})s is new; update bench/orders.py")
        return SERVICE_PARAMETERS[match.group(1)]

    return re.sub(r"%\((\w+)\)s", value, sql).strip()


def service_statements() -> str:
    """What db/orders/placement.py sends for a one-line order without coupon or key, as a pgbench script.

    One round trip: the locks (and the order's id, and generic plans), the guarded write and the
    OrderCreated append, pipelined in one implicit transaction; the service's own text, parameters filled in.
    (The service decides from its catalog cache: no read precedes the write.)
    """
    from db.orders.placement import _LOCK, _WRITE_IF_UNCHANGED
    from db.outbox.events import APPEND_ORDER_EVENT

    sent = (_LOCK, _WRITE_IF_UNCHANGED, APPEND_ORDER_EVENT)
    statements = "\n".join(_bind(statement) + ";" for statement in sent)
    return "\\set cust random(1, 2000000000)\n\\startpipeline\n" + statements + "\n\\endpipeline\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of API and peer, alternating (medians)")
    parser.add_argument("--clients", type=int, default=8, help="pgbench clients")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument(
        "--pool-size", type=int, default=8, help="database connections of each server (as many as pgbench clients)"
    )
    parser.add_argument("--products", type=int, default=1000, help="SKUs of the low-contention mix")
    parser.add_argument("--orders-per-customer", type=int, default=3, choices=(1, 2, 3), help="orders of each customer")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-orders-") as scratch:
        url = start_embedded_postgres(Path(scratch), delete_on_exit=True)
        upgrade_to_newest(url)
        hot = _load_catalog(url, args.products)
        mixes = {"low_contention": list(range(1, args.products + 1)), "hot_sku": [hot]}
        postgres = _postmaster(url)
        pgbench = {mix: _pgbench(url, service_statements(), ids, args, Path(scratch)) for mix, ids in mixes.items()}
        servers = {"api": _start_api(url, args, Path(scratch)), "bare_peer": _start_bare_peer(url, args)}
        try:
            runs = _measure_servers(servers, mixes, args, postgres)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=15)
    report = _report(args, pgbench, runs, mixes)
    print(_table(report))
    print(json.dumps(report, indent=2))


def _load_catalog(url: str, count: int) -> int:
    """`count` ordinary SKUs and one hot SKU, all with stock to spare; the hot SKU's id."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock, updated_at)"
            " SELECT 'BENCH-' || n, 'Bench sneaker ' || n, 'Bench', '270', %s, 1000000000, %s"
            " FROM generate_series(1, %s) AS n",
            (PRICE, TERMS_CHANGED_AT, count),
        )
        return connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock, updated_at)"
            " VALUES ('BENCH-HOT', 'Hot drop', 'Bench', '270', %s, 1000000000, %s) RETURNING id",
            (PRICE, TERMS_CHANGED_AT),
        ).fetchone()[0]


def _pgbench(url: str, transaction: str, product_ids: list[int], args, scratch: Path) -> dict:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    first, last = product_ids[0], product_ids[-1]
    logs = Path(tempfile.mkdtemp(dir=scratch, prefix="pgbench-"))
    script = logs / "order.sql"
    script.write_text(f"\\set pid random({first}, {last})\n" + transaction)
    params = psycopg.conninfo.conninfo_to_dict(libpq_url(url))
    command = [
        str(POSTGRES_BIN_PATH / "pgbench"),
        *("-n", "-M", "prepared", "-c", str(args.clients), "-j", "2", "-T", str(round(args.seconds))),
        *("-f", str(script), "-l", "--log-prefix", str(logs / "tx")),
        *("-h", params["host"], "-p", str(params.get("port", 5432)), "-U", params["user"], params["dbname"]),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    if finished.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{finished.stderr}")
    tps = float(next(line for line in finished.stdout.splitlines() if line.startswith("tps")).split()[2])
    latencies = sorted(int(line.split()[2]) / 1000 for log in logs.glob("tx*") for line in log.read_text().splitlines())
    return {"orders_per_s": round(tps), "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99)}


def _start_api(url: str, args, scratch: Path) -> subprocess.Popen:
    port = free_port()
    environment = {
        **os.environ,
        **BENCH_SECRETS,  # its limits are the defaults
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": str(args.pool_size),
        # As many connections as the peer's pool: no overflow.
        "DATABASE_POOL_MAX_OVERFLOW": "0",
    }
    for variable in ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "ADMIN_TOKEN"):
        environment.pop(variable, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / "api.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    server.base_url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{server.base_url}/readyz")
    return server


def _start_bare_peer(url: str, args) -> subprocess.Popen:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_orders_api.py")), "--port", str(port)]
        + ["--database-url", url, "--pool-size", str(args.pool_size)],
        stdout=subprocess.DEVNULL,
    )
    server.base_url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{server.base_url}/openapi.json")
    return server


def _measure_servers(servers: dict, mixes: dict, args, postgres: psutil.Process) -> dict:
    """Each server under each mix, alternating, `args.rounds` times: {server: {mix: [run, ...]}}."""
    orders_at_most = int(args.seconds * 6000) + 1000  # more than this machine's pgbench rate
    customers = orders_at_most // args.orders_per_customer + CUSTOMER_WINDOW * WRK_THREADS
    runs = {name: {mix: [] for mix in mixes} for name in servers}
    for name, server in servers.items():  # warm-up: connections opened, statements prepared, caches filled
        post_orders(
            server.base_url,
            mixes["low_contention"],
            connections=args.connections,
            seconds=2,
            tokens=customer_tokens(f"warm-{name}", 3000 * 2),
        )
    for round_number in range(args.rounds):
        for mix, ids in mixes.items():
            tokens = customer_tokens(f"{mix}-{round_number}", customers)
            for name, server in servers.items():
                runs[name][mix].append(_measure(server, ids, tokens, args, postgres))
    return runs


def _measure(server: subprocess.Popen, product_ids: list[int], tokens: list[str], args, postgres) -> dict:
    process = psutil.Process(server.pid)
    before, postgres_before = process_cpu(process), postgres_cpu(postgres)
    load = post_orders(
        server.base_url,
        product_ids,
        connections=args.connections,
        seconds=args.seconds,
        tokens=tokens,
        orders_per_customer=args.orders_per_customer,
    )
    after, postgres_after = process_cpu(process), postgres_cpu(postgres)
    if load.status_counts.get("2xx", 0) != load.requests:
        raise SystemExit(f"not every order was placed: {load.status_counts}")
    return {
        "orders_per_s": load.per_second,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "cpu_ms_per_order": 1000 * (after - before) / load.requests,
        "postgres_cpu_ms_per_order": 1000 * (postgres_after - postgres_before) / load.requests,
        "load_generator": load.generator,
    }


def _postmaster(url: str) -> psutil.Process:
    with psycopg.connect(libpq_url(url)) as connection:
        # Asked while the backend lives: once the connection closes, its process may be gone.
        return psutil.Process(connection.info.backend_pid).parent()


def _report(args, pgbench: dict, runs: dict, mixes: dict) -> dict:
    servers = {name: {mix: _medians(mix_runs) for mix, mix_runs in by_mix.items()} for name, by_mix in runs.items()}
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "settings": {
            key: getattr(args, key)
            for key in ("seconds", "rounds", "clients", "connections", "pool_size", "products", "orders_per_customer")
        },
        "pgbench_service_statements": pgbench,
        "api": servers["api"],
        "bare_peer": servers["bare_peer"],
        "ratios": {
            mix: {
                "api_over_pgbench": round(servers["api"][mix]["orders_per_s"] / pgbench[mix]["orders_per_s"], 3),
                "api_over_bare_peer": round(
                    servers["api"][mix]["orders_per_s"] / servers["bare_peer"][mix]["orders_per_s"], 3
                ),
            }
            for mix in mixes
        },
        "rounds": runs,
    }


def _medians(mix_runs: list[dict]) -> dict:
    numbers = ("orders_per_s", "p50_ms", "p99_ms", "cpu_ms_per_order", "postgres_cpu_ms_per_order")
    medians = {key: round(statistics.median(run[key] for run in mix_runs), 3) for key in numbers}
    medians["orders_per_s"] = round(medians["orders_per_s"])
    return {**medians, "load_generator": mix_runs[0]["load_generator"]}


def _table(report: dict) -> str:
    api, bare, pgbench, ratios = (
        report["api"],
        report["bare_peer"],
        report["pgbench_service_statements"],
        report["ratios"],
    )

    def cell(run: dict) -> str:
        return f"{run['orders_per_s']:,} ({run['p50_ms']:.1f} / {run['p99_ms']:.1f})"

    rows = [
        ("orders/s (p50 / p99 ms)", "low contention (1 of 1,000 SKUs)", "one hot SKU"),
        ("pgbench, the service's statements", cell(pgbench["low_contention"]), cell(pgbench["hot_sku"])),
        ("POST /orders through the API", cell(api["low_contention"]), cell(api["hot_sku"])),
        ("bare peer (FastAPI + raw psycopg)", cell(bare["low_contention"]), cell(bare["hot_sku"])),
        *[
            (label, f"{run_of('low_contention')[key]:.3f}", f"{run_of('hot_sku')[key]:.3f}")
            for label, run_of, key in (
                ("API CPU ms per order", lambda mix: api[mix], "cpu_ms_per_order"),
                ("peer CPU ms per order", lambda mix: bare[mix], "cpu_ms_per_order"),
                ("PostgreSQL CPU ms per API order", lambda mix: api[mix], "postgres_cpu_ms_per_order"),
                ("PostgreSQL CPU ms per peer order", lambda mix: bare[mix], "postgres_cpu_ms_per_order"),
                ("API / pgbench", lambda mix: ratios[mix], "api_over_pgbench"),
                ("API / bare peer", lambda mix: ratios[mix], "api_over_bare_peer"),
            )
        ],
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "| " + " | ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "| " + " | ".join("-" * width for width in widths) + " |")
    generator = report["api"]["low_contention"]["load_generator"]
    return "\n".join(lines) + f"\n(load by {generator}; {report['settings']['rounds']} rounds, medians)\n"


def _percentile(sorted_values: list[float], percent: int) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, len(sorted_values) * percent // 100)], 2)


if __name__ == "__main__":
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk): the load generator is Python's aiohttp,", file=sys.stderr)
        print("which takes CPU from the servers on a small machine; the ratios are then lower", file=sys.stderr)
    main()
