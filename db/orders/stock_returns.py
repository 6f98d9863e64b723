"""Stock that comes back (a cancel, an expiry, a restock) heard by every API process, through LISTEN/NOTIFY.

Any write that raises a product's stock, or inserts one with stock, notifies STOCK_RETURNED_CHANNEL
with the product's id, by a trigger (migration 0009_drop_stock_returned_notify), so no writer can
forget to: PostgreSQL delivers it at commit, to every listener. The payload may also name several
ids, comma-separated, or ALL_PRODUCTS. The listener makes its catalog cache forget the stock it saw
of them, so a product this process refuses
as sold out is buyable again as soon as the notification arrives (milliseconds). While the listener
is not connected the cache refuses nothing from memory; after a reconnection it forgets everything
(notifications sent meanwhile are lost).
"""

import asyncio
import logging

import psycopg
from sqlalchemy.engine import make_url

from db.orders.catalog_cache import CatalogCache

STOCK_RETURNED_CHANNEL = "sneaker_orders_stock_returned"
ALL_PRODUCTS = "*"
RECONNECT_SECONDS = 1.0

log = logging.getLogger(__name__)


def listener_conninfo(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy database URL (postgresql+psycopg://... -> postgresql://...)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def returned_products(payload: str) -> list[int] | None:
    """The product ids a notification names; None: every product."""
    if payload == ALL_PRODUCTS:
        return None
    return [int(part) for part in payload.split(",") if part]


class StockReturnsListener:
    """Listens for returned stock on its own connection and tells `catalog`, until stopped."""

    def __init__(self, database_url: str, catalog: CatalogCache) -> None:
        self.conninfo, self.catalog = listener_conninfo(database_url), catalog
        self._task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background (the cache trusts its memory once the LISTEN is in place)."""
        self._task = asyncio.create_task(self._listen_forever(), name="stock-returns-listener")

    async def stop(self) -> None:
        """Stop listening; the cache refuses nothing from memory after this."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._not_listening()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as error:
                log.warning("stock returns listener lost its connection (%s); reconnecting", error)
            self._not_listening()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as connection:
            await connection.execute(f"LISTEN {STOCK_RETURNED_CHANNEL}")
            # Whatever was seen before the LISTEN may have been given back unheard.
            self.catalog.stock_returned(None)
            self.catalog.listening = True
            self.listening.set()
            async for notification in connection.notifies():
                self.catalog.stock_returned(returned_products(notification.payload))

    def _not_listening(self) -> None:
        self.catalog.listening = False
        self.listening.clear()
        self.catalog.stock_returned(None)
