"""A closed-loop HTTP load generator: `wrk` when installed (C, light), else aiohttp in its own process."""

import asyncio
import json
import multiprocessing
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadResult:
    """What a run of the load generator measured."""

    generator: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    status_counts: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def post_orders(
    base_url: str,
    product_ids: list[int],
    *,
    connections: int,
    seconds: float,
    tokens: list[str],
    orders_per_customer: int = 1,
) -> LoadResult:
    """POST one-line orders for a random product of `product_ids` from `connections` clients for `seconds`.

    Each customer of `tokens` (bearer JWTs) places `orders_per_customer` orders, never two at once:
    under wrk each thread takes its own customers, going round a window of CUSTOMER_WINDOW of them
    that many times before the next window (so a customer's next order comes CUSTOMER_WINDOW orders
    of that thread later); under aiohttp each client places its customer's orders one after the other.
    Past the last token the customers are used again.
    """
    if shutil.which("wrk"):
        return _with_wrk(base_url, product_ids, connections, seconds, tokens, orders_per_customer)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_with_aiohttp, (base_url, product_ids, connections, seconds, tokens, orders_per_customer))


WRK_THREADS = 2
CUSTOMER_WINDOW = 64

_WRK_SCRIPT = """
local products = {%(products)s}
local tokens = {%(tokens)s}
local per_customer, window, threads = %(per_customer)d, %(window)d, %(threads)d
local n = 0
started = 0
function setup(thread)
  started = started + 1
  thread:set("id", started)
end
wrk.method = "POST"
request = function()
  local slot = n %% window + window * math.floor(n / (window * per_customer))
  n = n + 1
  local token = tokens[(slot * threads + id - 1) %% #tokens + 1]
  local product = products[math.random(#products)]
  local body = '{"items":[{"product_id":' .. product .. ',"quantity":1}]}'
  -- wrk.format uses these headers instead of wrk.headers: every header is named here.
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  return wrk.format(nil, "/orders", headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%f %%f %%f %%d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
"""


def _with_wrk(base_url, product_ids, connections, seconds, tokens, orders_per_customer) -> LoadResult:
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "orders.lua"
        script.write_text(
            _WRK_SCRIPT
            % {
                "products": ",".join(map(str, product_ids)),
                "tokens": ",".join(f'"{token}"' for token in tokens),
                "per_customer": orders_per_customer,
                "window": CUSTOMER_WINDOW,
                "threads": WRK_THREADS,
            }
        )
        output = subprocess.run(
            [
                "wrk",
                f"-t{WRK_THREADS}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                str(script),
                base_url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    requests, duration, p50, p99, non_2xx = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\S+)", output).groups()
    statuses = {"2xx": int(requests) - int(non_2xx), "other": int(non_2xx)}
    return LoadResult("wrk", int(requests), float(duration), float(p50), float(p99), statuses)


def _with_aiohttp(base_url, product_ids, connections, seconds, tokens, orders_per_customer) -> LoadResult:
    import aiohttp

    async def run() -> LoadResult:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        deadline = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(base_url, connector=connector) as session:

            async def client(number: int) -> None:
                sent = 0
                while time.perf_counter() < deadline:
                    sent += 1
                    body = {"items": [{"product_id": random.choice(product_ids), "quantity": 1}]}
                    customer = number + (sent - 1) // orders_per_customer * connections
                    headers = {
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {tokens[customer % len(tokens)]}",
                    }
                    started = time.perf_counter()
                    async with session.post("/orders", data=json.dumps(body), headers=headers) as response:
                        await response.read()
                    latencies.append(time.perf_counter() - started)
                    key = f"{response.status // 100}xx"
                    statuses[key] = statuses.get(key, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(client(number) for number in range(connections)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        return LoadResult(
            "aiohttp",
            len(latencies),
            elapsed,
            1000 * latencies[len(latencies) // 2],
            1000 * latencies[int(len(latencies) * 0.99)],
            statuses,
        )

    return asyncio.run(run())
