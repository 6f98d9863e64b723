"""The demo platform (sink) served on loopback for the tests, and a handle to drive and inspect it."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from aiohttp import web

from devstack.sink.app import create_sink_app
from devstack.sink.verification import DeliveryCheck
from tests.support.background_loop import BackgroundLoop
from tests.support.cli_process import serving_command
from tests.support.event_contract import published_contract
from tests.support.polling import wait_until


@contextmanager
def serve_sink(background: BackgroundLoop, check: DeliveryCheck | None = None) -> Iterator[str]:
    """Serve a fresh sink on a free loopback port (verifying deliveries as `check` says); yields its base URL."""
    runner = web.AppRunner(create_sink_app(check=check), access_log=None)
    background.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    background.run(site.start())
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        background.run(runner.cleanup())


@contextmanager
def sink_process(log_file: Path) -> Iterator[str]:
    """Serve a fresh sink as its own process (`sneaker-orders sink`) on a free loopback port; yields its base URL.

    Apart from the test's process, the platform receiving a drain shares neither a core nor the GIL with the test
    that polls and times it."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PLATFORM_")}
    with serving_command(["sink"], environment, log_file, "/stats") as (url, _):
        yield url


class Sink:
    """What a test does with the platform: set its faults, read what it received."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=10)

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    def set_faults(self, **faults) -> None:
        self._http.put("/faults", json=faults).raise_for_status()

    def received(self, aggregate_id: str | None = None) -> list[dict]:
        """Events received, in arrival order: key, received_at, deliveries, body."""
        params = {"aggregate_id": aggregate_id} if aggregate_id else None
        return self._http.get("/events", params=params).json()

    def stats(self) -> dict:
        return self._http.get("/stats").json()

    def wait_for_events(self, count: int, timeout: float = 30, aggregate_id: str | None = None) -> list[dict]:
        """Wait until at least `count` distinct events (of `aggregate_id`, if given) arrived; return them, each
        checked against the published contract (/asyncapi.json)."""

        def arrived() -> list[dict] | None:
            events = self.received(aggregate_id)
            return events if len(events) >= count else None

        of = f" of order {aggregate_id}" if aggregate_id else ""
        events = wait_until(arrived, timeout=timeout, what=f"{count} events{of} at the sink")
        published_contract().check([event["body"] for event in events])
        return events
