"""Order throughput in one run on one fresh database: the raw SQL ceiling with pgbench, then POST /orders.

    .venv/bin/python bench/orders.py [--seconds 10]      (or: make bench)

Prints JSON: orders/s and p50/p99 latency for a low-contention mix (a random one of 1,000 SKUs per
order) and a single hot SKU; for pgbench running the service's own statements, for pgbench running
the order transaction written plainly (BEGIN, stock update, three inserts, COMMIT), and for the
real API under concurrent load; with the API/raw ratios and the CPU each side spent per order.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_load import post_orders  # noqa: E402
from bench.support import BENCH_API_ENVIRONMENT, customer_tokens, free_port, wait_for_http  # noqa: E402
from db.migrate import upgrade_to_newest  # noqa: E402
from sneaker_orders.local_postgres import libpq_url, start_embedded_postgres  # noqa: E402

PAYLOAD = json.dumps(
    {
        "order_id": 0,
        "status": "CREATED",
        "customer_id": "bench",
        "coupon_id": None,
        "subtotal": 139000,
        "discount": 0,
        "total": 139000,
        "items": [{"product_id": 1, "quantity": 1, "unit_price": 139000, "line_total": 139000}],
        "created_at": "2026-11-25T00:00:00Z",
        "expires_at": "2026-11-25T00:15:00Z",
        "payment_id": None,
        "confirmed_at": None,
        "cancelled_at": None,
        "expired_at": None,
    }
)

# What the service binds, as pgbench expressions, for a one-line order without coupon or key by a new customer.
SERVICE_PARAMETERS = {
    "customer_id": "('bench-' || :cust)",
    "product_ids": "ARRAY[CAST(:pid AS integer)]",
    "allocate_order_id": "true",
    "key_lock": "NULL",
    "customer_lock": "hashtextextended('bench-' || :cust, 0)",
    "quantities": "ARRAY[1]",
    "unit_prices": "ARRAY[139000]",
    "max_per_customer": "ARRAY[NULL]",
    "held_pairs": "ARRAY[0]",
    "unpaid_orders": "0",
    "coupon_id": "NULL",
    "coupon_terms_at": "NULL",
    "order_id": ":order_id",
    "subtotal": "139000",
    "discount": "0",
    "total": "139000",
    "created_at": "now()",
    "expires_at": "now() + interval '15 minutes'",
    "idempotency_key": "NULL",
    "request_fingerprint": "'fingerprint'",
    "response": f"'{PAYLOAD}'",
    "key_expires_at": "now()",
    "event_id": "gen_random_uuid()",
    "aggregate_type": "'order'",
    "event_type": "'OrderCreated'",
    "payload": f"'{PAYLOAD}'",
    "occurred_at": "now()",
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

    The read of the decision's facts (which allocates the order id), then the write as the service
    sends it: the locks, the guarded write and the OrderCreated append pipelined in one implicit
    transaction. The statements are the service's own text with its parameters filled in.
    """
    from db.orders.decision_facts import _READ
    from db.orders.placement import _LOCK, _WRITE_IF_UNCHANGED
    from db.outbox.events import APPEND_ORDER_EVENT

    pipelined = "\n".join(_bind(statement) + ";" for statement in (_LOCK, _WRITE_IF_UNCHANGED, APPEND_ORDER_EVENT))
    return (
        "\\set cust random(1, 2000000000)\n"
        + _bind(_READ)
        + " \\gset\n\\startpipeline\n"
        + pipelined
        + "\n\\endpipeline\n"
    )


# The order transaction as the contract words it, written plainly: the reference ceiling.
PLAIN_TRANSACTION = f"""
BEGIN;
UPDATE products SET stock = stock - 1 WHERE id = CAST(:pid AS integer) AND stock >= 1 AND active RETURNING price;
INSERT INTO orders (status, customer_id, subtotal, discount, total, created_at, expires_at)
VALUES ('CREATED', 'bench', 139000, 0, 139000, now(), now() + interval '15 minutes') RETURNING id AS order_id \\gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)
VALUES (CAST(:order_id AS bigint), CAST(:pid AS integer), 1, 139000, 139000);
INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, created_at)
VALUES (gen_random_uuid(), 'order', CAST(:order_id AS text), 1, 'OrderCreated', '{PAYLOAD}', now());
COMMIT;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measurement")
    parser.add_argument("--clients", type=int, default=8, help="pgbench clients")
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--pool-size", type=int, default=16, help="database connections of the API")
    parser.add_argument("--products", type=int, default=1000, help="SKUs of the low-contention mix")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-orders-") as scratch:
        url = start_embedded_postgres(Path(scratch), delete_on_exit=True)
        upgrade_to_newest(url)
        hot = _load_catalog(url, args.products)
        mixes = {"low_contention": list(range(1, args.products + 1)), "hot_sku": [hot]}
        raw = {
            form: {mix: _pgbench(url, script, ids, args, Path(scratch)) for mix, ids in mixes.items()}
            for form, script in (("service_statements", service_statements()), ("plain_transaction", PLAIN_TRANSACTION))
        }
        api = _measure_api(url, mixes, args)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {key: getattr(args, key) for key in ("seconds", "clients", "connections", "pool_size", "products")},
        "raw_sql": raw,
        "api": api,
        "api_over_raw": {
            form: {mix: round(api[mix]["orders_per_s"] / raw[form][mix]["orders_per_s"], 3) for mix in mixes}
            for form in raw
        },
    }
    print(json.dumps(report, indent=2))


def _load_catalog(url: str, count: int) -> int:
    """`count` ordinary SKUs and one hot SKU, all with stock to spare; the hot SKU's id."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock)"
            " SELECT 'BENCH-' || n, 'Bench sneaker ' || n, 'Bench', '270', 139000, 1000000000"
            " FROM generate_series(1, %s) AS n",
            (count,),
        )
        return connection.execute(
            "INSERT INTO products (sku, name, brand, size, price, stock)"
            " VALUES ('BENCH-HOT', 'Hot drop', 'Bench', '270', 139000, 1000000000) RETURNING id"
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
        "-n",
        "-M",
        "prepared",
        "-c",
        str(args.clients),
        "-j",
        "2",
        "-T",
        str(int(args.seconds)),
        "-f",
        str(script),
        "-l",
        "--log-prefix",
        str(logs / "tx"),
        "-h",
        params["host"],
        "-p",
        str(params.get("port", 5432)),
        "-U",
        params["user"],
        params["dbname"],
    ]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    if finished.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{finished.stderr}")
    output = finished.stdout
    tps = float(next(line for line in output.splitlines() if line.startswith("tps")).split()[2])
    latencies = sorted(int(line.split()[2]) / 1000 for log in logs.glob("tx*") for line in log.read_text().splitlines())
    return {"orders_per_s": round(tps), "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99)}


def _measure_api(url: str, mixes: dict[str, list[int]], args) -> dict:
    port = free_port()
    env = {**os.environ, **BENCH_API_ENVIRONMENT, "DATABASE_URL": url, "DATABASE_POOL_SIZE": str(args.pool_size)}
    api = subprocess.Popen(
        [sys.executable, "-m", "sneaker_orders.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/readyz")
        warm = customer_tokens("warm", 256)
        post_orders(base_url, mixes["low_contention"], connections=args.connections, seconds=2, tokens=warm)
        results = {}
        for mix, ids in mixes.items():
            tokens = customer_tokens(mix, 4096)
            before = _cpu_seconds(api.pid, url)
            load = post_orders(base_url, ids, connections=args.connections, seconds=args.seconds, tokens=tokens)
            after = _cpu_seconds(api.pid, url)
            if load.status_counts.get("2xx", 0) != load.requests:
                raise SystemExit(f"{mix}: not every order was placed: {load.status_counts}")
            results[mix] = {
                "orders_per_s": round(load.per_second),
                "p50_ms": round(load.p50_ms, 2),
                "p99_ms": round(load.p99_ms, 2),
                "load_generator": load.generator,
                "cpu_ms_per_order": {
                    side: round(1000 * (after[side] - before[side]) / load.requests, 3) for side in after
                },
            }
        return results
    finally:
        api.terminate()
        api.wait(timeout=15)


def _cpu_seconds(api_pid: int, url: str) -> dict[str, float]:
    """CPU time so far of the API process and of every PostgreSQL process."""
    api = psutil.Process(api_pid).cpu_times()
    postgres = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] == "postgres" and process.info["cpu_times"]:
            postgres += process.info["cpu_times"].user + process.info["cpu_times"].system
    return {"api": api.user + api.system, "postgres": postgres}


def _percentile(sorted_values: list[float], percent: int) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, len(sorted_values) * percent // 100)], 2)


if __name__ == "__main__":
    main()
