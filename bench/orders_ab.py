"""A/B of `POST /orders`: the API at a git revision against this working tree, interleaved, on one database.

    .venv/bin/python bench/orders_ab.py --before 2de1065 [--seconds 8] [--rounds 6] [--hot]

Both APIs start with bench/orders.py's settings (8 database connections, no overflow, default
limits) against one embedded PostgreSQL with its catalog (1,000 SKUs and a hot one), take the same
load (bench/http_load.py: wrk, or its aiohttp generator) in turn, the first of each round
alternating, and the medians are printed with each round. CPU per order is each API process's
user + system CPU (psutil) over the orders it answered; PostgreSQL's likewise. The revision's code
is unpacked with `git archive` into a scratch directory and run from there.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import orders  # noqa: E402
from bench.http_load import CUSTOMER_WINDOW, WRK_THREADS, post_orders  # noqa: E402
from bench.support import BENCH_SECRETS, customer_tokens, free_port, wait_for_http  # noqa: E402
from db.migrate import upgrade_to_newest  # noqa: E402
from devstack.local_postgres import start_embedded_postgres  # noqa: E402


def _cli_module(source: Path) -> str:
    """The console script's module in `source`: `cli.main` since the CLI moved out of `sneaker_orders/`."""
    return "cli.main" if (source / "cli" / "main.py").exists() else "sneaker_orders.cli"


def _start_api(url: str, source: Path, log: Path, pool_size: int) -> subprocess.Popen:
    port = free_port()
    environment = {
        **os.environ,
        **BENCH_SECRETS,
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": str(pool_size),
        "DATABASE_POOL_MAX_OVERFLOW": "0",
        "PYTHONPATH": str(source),
    }
    for variable in ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "ADMIN_TOKEN"):
        environment.pop(variable, None)
    server = subprocess.Popen(
        [sys.executable, "-m", _cli_module(source), "api", "--port", str(port)],
        env=environment,
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - closed with the process
    )
    server.base_url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{server.base_url}/readyz")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision of the A side (B is the working tree)")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument("--orders-per-customer", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--hot", action="store_true", help="every order for the one hot SKU")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-orders-ab-") as scratch:
        scratch = Path(scratch)
        before = scratch / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        url = start_embedded_postgres(scratch, delete_on_exit=True)
        upgrade_to_newest(url)
        hot = orders._load_catalog(url, 1000)
        ids = [hot] if args.hot else list(range(1, 1001))
        postgres = orders._postmaster(url)
        servers = {
            args.before: _start_api(url, before, scratch / "before.log", args.pool_size),
            "working tree": _start_api(url, ROOT, scratch / "after.log", args.pool_size),
        }
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        customers = (int(args.seconds * 6000) + 1000) // args.orders_per_customer + CUSTOMER_WINDOW * WRK_THREADS
        try:
            for name, server in servers.items():
                post_orders(
                    server.base_url,
                    ids,
                    connections=args.connections,
                    seconds=2,
                    tokens=customer_tokens(f"warm-{name}", 6000),
                )
            for round_number in range(args.rounds):
                turn = list(servers.items())
                for name, server in turn if round_number % 2 == 0 else reversed(turn):
                    tokens = customer_tokens(f"{round_number}-{name}", customers)
                    run = orders._measure(server, ids, tokens, args, postgres)
                    runs[name].append(run)
                    print(
                        f"round {round_number} {name}: {run['orders_per_s']:.0f} orders/s,"
                        f" API {run['cpu_ms_per_order']:.3f} ms/order,"
                        f" PostgreSQL {run['postgres_cpu_ms_per_order']:.3f} ms/order,"
                        f" p50/p99 {run['p50_ms']:.0f}/{run['p99_ms']:.0f} ms",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(timeout=15)
    medians = {
        name: {key: statistics.median(run[key] for run in rs) for key in rs[0] if key != "load_generator"}
        for name, rs in runs.items()
    }
    print(json.dumps({"mix": "hot_sku" if args.hot else "low_contention", "medians": medians, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
