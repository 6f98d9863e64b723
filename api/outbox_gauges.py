"""The outbox gauges of /metrics: read from the database at most once per interval, served from memory.

A reading counts, for each configured destination, up to 100,000 deliveries of each waiting status: tens
of milliseconds of PostgreSQL's time per destination under a backlog of hundreds of thousands. Scrapes
in between, however many and however often, cost no statement. Only the first scrape of a process waits
for a reading; later ones never do: a reading older than the interval is refreshed in the background, one
refresh at a time, and the scrape serves the last one (`sneaker_orders_outbox_read_age_seconds` says how
old it is)."""

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.metrics import observe_outbox, observe_outbox_read_age
from db.outbox.operations import outbox_health


@dataclass
class OutboxGauges:
    """When the outbox was last read for the gauges, and the reading in flight."""

    # 0: every scrape reads the outbox and waits for it (as before the gauges were kept).
    interval_seconds: float
    _read_at: float | None = field(default=None, repr=False)
    _reading: asyncio.Task | None = field(default=None, repr=False)

    async def observe(self, engine: AsyncEngine) -> None:
        """Have the gauges show a reading at most interval_seconds old (started now if older); waits only for the
        first reading, or for every one when interval_seconds is 0."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.interval_seconds:
            reading = self._reading_in_flight() or self._start_reading(engine)
            if self._read_at is None or self.interval_seconds == 0:
                await asyncio.shield(reading)
        observe_outbox_read_age(time.monotonic() - self._read_at if self._read_at is not None else None)

    def _reading_in_flight(self) -> asyncio.Task | None:
        reading = self._reading
        if reading is None or reading.done() or reading.get_loop() is not asyncio.get_running_loop():
            return None
        return reading

    def _start_reading(self, engine: AsyncEngine) -> asyncio.Task:
        self._reading = asyncio.get_running_loop().create_task(self._read(engine), name="outbox-gauges")
        return self._reading

    async def _read(self, engine: AsyncEngine) -> None:
        try:
            health = await outbox_health(engine)
        except SQLAlchemyError:
            health = None  # the process's own metrics are still worth serving; /readyz reports the database
        observe_outbox(health)
        # A failed reading counts too: a database in trouble is asked again only after the interval.
        self._read_at = time.monotonic()
