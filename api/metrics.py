"""Prometheus metrics of the API process, and the middleware that times every request."""

import asyncio
import itertools
from time import perf_counter

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from db.outbox.operations import WAITING_STATUSES, OutboxHealth

ORDERS_PLACED = Counter("sneaker_orders_orders_placed_total", "Orders placed (idempotent replays not counted)")
ORDER_WRITES_REDECIDED = Counter(
    "sneaker_orders_order_writes_redecided_total",
    "Order writes that found a fact of their decision changed (a stale cached price, stock run short, another"
    " order of the customer) and wrote nothing; the order was decided again",
)
PROBLEMS = Counter("sneaker_orders_problems_total", "Problem responses, by status and code", ["status", "code"])
REQUEST_DURATION = Histogram(
    "sneaker_orders_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


OUTBOX_EVENTS = Gauge(
    "sneaker_orders_outbox_events",
    "Deliveries waiting, by destination and status: PENDING, PROCESSING, FAILED (each counted up to 100000;"
    " SENT never counted)",
    ["destination", "status"],
)
OUTBOX_LAG = Gauge(
    "sneaker_orders_outbox_lag_seconds",
    "Age of the oldest event whose delivery to the destination is not yet SENT nor FAILED (PENDING, in backoff or"
    " due, or PROCESSING); 0 when none",
    ["destination"],
)
OUTBOX_OLDEST_DUE = Gauge(
    "sneaker_orders_outbox_oldest_due_seconds",
    "How long the destination's oldest due PENDING delivery has waited to be claimed",
    ["destination"],
)
OUTBOX_READ = Gauge(
    "sneaker_orders_outbox_read_ok",
    "1 if the latest reading of the outbox succeeded; 0 if not (the outbox gauges are then stale)",
)
OUTBOX_READ_AGE = Gauge(
    "sneaker_orders_outbox_read_age_seconds",
    "Age of the reading the outbox gauges show (read at most every METRICS_OUTBOX_INTERVAL_SECONDS)",
)
# The destinations the outbox gauges show: one taken out of the configuration leaves them.
_SHOWN_DESTINATIONS: set[str] = set()


def observe_outbox(health: list[OutboxHealth] | None) -> None:
    """Set the outbox gauges from a fresh reading, one per configured destination (None: the outbox could not be
    read)."""
    OUTBOX_READ.set(0 if health is None else 1)
    if health is None:
        return
    for destination in _SHOWN_DESTINATIONS - {reading.destination for reading in health}:
        for status in WAITING_STATUSES:
            OUTBOX_EVENTS.remove(destination, status)
        OUTBOX_LAG.remove(destination)
        OUTBOX_OLDEST_DUE.remove(destination)
    _SHOWN_DESTINATIONS.clear()
    for reading in health:
        _SHOWN_DESTINATIONS.add(reading.destination)
        for status, events in reading.events_by_status.items():
            OUTBOX_EVENTS.labels(reading.destination, status).set(events)
        OUTBOX_LAG.labels(reading.destination).set(reading.lag_seconds)
        OUTBOX_OLDEST_DUE.labels(reading.destination).set(reading.oldest_due_seconds)


def observe_outbox_read_age(seconds: float | None) -> None:
    """Set how old the reading the outbox gauges show is (None: no reading yet)."""
    OUTBOX_READ_AGE.set(float("nan") if seconds is None else seconds)


class SharedExposition:
    """The Prometheus text of this process, rendered once for the scrapes that arrive together.

    A scrape may take a text whose rendering began after the scrape asked (so it shows everything that
    happened before the scrape), never an older one: 20 scrapers scraping at once cost one rendering.
    """

    def __init__(self) -> None:
        self._tickets = itertools.count()
        # (the ticket drawn when the rendering began, the text): one tuple, replaced whole.
        self._latest: tuple[int, bytes] = (-1, b"")

    async def latest(self) -> bytes:
        """The text, rendered no earlier than this call."""
        asked = next(self._tickets)
        await asyncio.sleep(0)  # the scrapes that arrived with this one ask too, before one of them renders
        rendered_from, text = self._latest
        if rendered_from > asked:
            return text
        began = next(self._tickets)
        text = generate_latest()
        self._latest = (began, text)
        return text


EXPOSITION = SharedExposition()


class RequestTiming:
    """Pure ASGI middleware: records the duration of each request under its route template."""

    def __init__(self, app) -> None:
        self.app = app
        # (method, route, status) -> its histogram child: labels() costs a lock and checks on every request.
        self._durations: dict[tuple[str, str, str], object] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            labels = (scope["method"], route.path if route is not None else "unmatched", str(status))
            child = self._durations.get(labels)
            if child is None:
                child = self._durations[labels] = REQUEST_DURATION.labels(*labels)
            child.observe(perf_counter() - started)
