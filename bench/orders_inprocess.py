"""A/B of what `POST /orders` costs the API process and PostgreSQL, in process: no HTTP server, no load generator.

    .venv/bin/python bench/orders_inprocess.py 2de1065 HEAD [--rounds 4] [--orders 3000] [--hot]

Each side (a git revision, unpacked with `git archive`, or `.` for the working tree) runs in a
process of its own: the app of `create_app`, started with its lifespan, is called as an ASGI app
by 16 concurrent clients on uvloop, one-line orders of customers placing 3 orders each (never two
at once), against one embedded PostgreSQL with bench/orders.py's catalog and settings (8
connections, no overflow). After a warm-up, `--orders` orders are timed: the process's own CPU
(time.process_time) and PostgreSQL's (psutil: postmaster, backends and reaped backends) per order.
Sides alternate, the first of each round in turn. Without uvicorn and the generator sharing the
two cores, the API's CPU per order moves a few percent between rounds where bench/orders_ab.py's
moves tens; what it leaves out (HTTP parsing, the socket) is the same code on every side.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16
WARM_UP_ORDERS = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sides", nargs="+", help="git revisions, . for the working tree, or source directories")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--orders", type=int, default=3000, help="orders timed per side and round")
    parser.add_argument("--hot", action="store_true", help="every order for the one hot SKU")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench import orders
    from bench.support import BENCH_SECRETS
    from db.migrate import upgrade_to_newest
    from devstack.local_postgres import start_embedded_postgres

    with tempfile.TemporaryDirectory(prefix="bench-orders-inprocess-") as scratch:
        sources = {side: _source(side, Path(scratch)) for side in args.sides}
        url = start_embedded_postgres(Path(scratch), delete_on_exit=True)
        upgrade_to_newest(url)
        hot = orders._load_catalog(url, 1000)
        environment = {**os.environ, **BENCH_SECRETS, "DATABASE_URL": url}
        environment |= {"DATABASE_POOL_SIZE": "8", "DATABASE_POOL_MAX_OVERFLOW": "0"}
        environment["BENCH_POSTMASTER_PID"] = str(orders._postmaster(url).pid)
        environment["BENCH_PRODUCTS"] = str(hot) if args.hot else "1-1000"
        for variable in ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "ADMIN_TOKEN"):
            environment.pop(variable, None)
        runs: dict[str, list[dict]] = {side: [] for side in args.sides}
        for round_number in range(args.rounds):
            for side in args.sides if round_number % 2 == 0 else reversed(args.sides):
                source = sources[side]
                finished = subprocess.run(
                    [sys.executable, __file__, "--run-side", f"{round_number}-{side}", str(args.orders)],
                    cwd=source,
                    env={**environment, "PYTHONPATH": str(source)},
                    capture_output=True,
                    text=True,
                )
                if finished.returncode != 0:
                    raise SystemExit(f"{side} failed:\n{finished.stderr[-4000:]}")
                run = json.loads(finished.stdout.splitlines()[-1])
                runs[side].append(run)
                print(
                    f"round {round_number} {side}: API {run['api_us_per_order']:.1f} us/order,"
                    f" PostgreSQL {run['postgres_us_per_order']:.1f} us/order, {run['orders_per_s']:.0f} orders/s",
                    flush=True,
                )
    medians = {
        side: {key: round(statistics.median(run[key] for run in rs), 1) for key in rs[0]} for side, rs in runs.items()
    }
    print(json.dumps({"mix": "hot_sku" if args.hot else "low_contention", "medians": medians, "runs": runs}, indent=2))


def _source(side: str, scratch: Path) -> Path:
    if side == ".":
        return ROOT
    if Path(side).is_dir():
        return Path(side)
    source = scratch / side.replace("/", "_")
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", side], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    return source


def run_side(name: str, timed_orders: int) -> None:
    """In the side's own source tree: warm up, time `timed_orders` orders, print one JSON line."""
    sys.path.insert(0, os.getcwd())
    import psutil
    import uvloop

    from api.app import create_app
    from devstack.customer_tokens import mint_customer_token
    from sneaker_orders.settings import Settings

    settings = Settings()
    app = create_app(settings)
    first, _, last = os.environ["BENCH_PRODUCTS"].partition("-")
    products = range(int(first), int(last or first) + 1)
    per_client = (WARM_UP_ORDERS + timed_orders) // CONCURRENCY + 3
    tokens = [
        mint_customer_token(settings, f"{name}-{n}", ttl_seconds=86400).encode()
        for n in range(CONCURRENCY * (per_client // 3 + 2))
    ]
    postmaster = psutil.Process(int(os.environ["BENCH_POSTMASTER_PID"]))
    statuses: dict[int, int] = {}

    async def order(token: bytes) -> None:
        body = b'{"items":[{"product_id":%d,"quantity":1}]}' % random.choice(products)
        headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + token)]
        headers.append((b"content-length", b"%d" % len(body)))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/orders",
            "raw_path": b"/orders",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # never disconnects

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def clients(orders_each: int, customer_offset: int) -> int:
        async def client(number: int) -> None:
            for n in range(orders_each):
                await order(tokens[(customer_offset + n // 3) * CONCURRENCY + number])

        await asyncio.gather(*(client(number) for number in range(CONCURRENCY)))
        return orders_each * CONCURRENCY

    async def measure() -> dict:
        async with app.router.lifespan_context(app):
            warm_up = WARM_UP_ORDERS // CONCURRENCY
            await clients(warm_up, 0)
            postgres_before, started, wall = _postgres_cpu(postmaster), time.process_time(), time.perf_counter()
            timed = await clients(timed_orders // CONCURRENCY, warm_up // 3 + 1)
            api, wall = time.process_time() - started, time.perf_counter() - wall
            postgres = _postgres_cpu(postmaster) - postgres_before
        if set(statuses) != {201}:
            raise SystemExit(f"not every order was placed: {statuses}")
        return {
            "api_us_per_order": 1e6 * api / timed,
            "postgres_us_per_order": 1e6 * postgres / timed,
            "orders_per_s": timed / wall,
        }

    print(json.dumps(uvloop.run(measure())))


def _postgres_cpu(postmaster) -> float:
    import psutil

    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--run-side":
        run_side(sys.argv[2], int(sys.argv[3]))
    else:
        main()
