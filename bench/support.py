"""Small helpers the benchmarks share: free ports, waiting for a server to answer, the API's secrets and tokens."""

import os
import socket
import time

import httpx
import psutil

from devstack.customer_tokens import mint_customer_token
from sneaker_orders.settings import Settings

# The secrets the benchmarks' API processes run with.
BENCH_SECRETS = {
    "AUTH_JWT_SECRET": "bench-customer-token-secret-of-32-bytes",
    "PAYMENT_WEBHOOK_SECRET": "whsec_YmVuY2gtcGF5bWVudC13ZWJob29rLXNlY3JldA==",
}
# With a limit of unpaid orders no benchmark reaches (its customers place many orders each and never pay).
BENCH_API_ENVIRONMENT = {**BENCH_SECRETS, "MAX_UNPAID_ORDERS_PER_CUSTOMER": "1000000000"}


def customer_tokens(prefix: str, count: int) -> list[str]:
    """Tokens of `count` customers `{prefix}-{n}`, valid for a day, as the benchmarks' API accepts them."""
    settings = Settings(auth_jwt_secret=BENCH_SECRETS["AUTH_JWT_SECRET"])
    return [mint_customer_token(settings, f"{prefix}-{n}", ttl_seconds=86400) for n in range(count)]


def free_port() -> int:
    """A TCP port nothing listens on right now; within BENCH_PORTS (e.g. `18300-18399`) when that is set."""
    span = os.environ.get("BENCH_PORTS")
    if not span:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    first, _, last = span.partition("-")
    for port in range(int(first), int(last) + 1):
        if port in _GIVEN:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise SystemExit(f"no free port in BENCH_PORTS={span}")


_GIVEN: set[int] = set()


def wait_for_http(url: str, timeout: float = 60) -> None:
    """Wait until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def process_cpu(process: psutil.Process) -> float:
    """User and system CPU seconds of `process`."""
    times = process.cpu_times()
    return times.user + times.system


def postgres_cpu(postmaster: psutil.Process) -> float:
    """CPU of the postmaster, its live children, and the children that have exited (reaped by the postmaster)."""
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            total += process_cpu(child)
        except psutil.NoSuchProcess:
            pass
    return total
