"""The demo platform (sink) served on loopback for the tests, and a handle to drive and inspect it."""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from aiohttp import web

from devstack.sink.app import create_sink_app
from devstack.sink.verification import DeliveryCheck
from tests.support.background_loop import BackgroundLoop
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
