"""A bulkhead for order writes: part of the connection pool, and no product may take all of that part.

Writes are what wait on row locks (a hot SKU, a product locked from outside). Without a bound they
could take every pooled connection for DATABASE_LOCK_TIMEOUT_MS and starve unrelated requests; with
one bound for all products, the orders of one locked product would take every slot and make orders
of other products queue behind them. So a write holds a slot of the process (the pool less two,
left to reads and /readyz) and a share of each of its products (at most a third of the slots per
product: two writes in flight keep a hot row busy, and fewer writes queued on it cost PostgreSQL
less). Waiting for either ends at DATABASE_POOL_TIMEOUT_SECONDS with OrderContention (503
ORDER_CONTENTION, Retry-After). The slots also own the order path's kept connections: one pool.
"""

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from db.orders.driver import OrderConnections
from db.orders.errors import OrderContention

# Connections of the pool (size plus overflow) that order writes leave to everything else.
CONNECTIONS_KEPT_FOR_READS = 2


class WriteSlots:
    """At most `size` order writes at once, at most `product_share` of them naming one product.

    `connections`: the order path's kept connections, taken only by a write that holds a slot.
    """

    def __init__(
        self,
        size: int,
        wait_seconds: float,
        *,
        product_share: int | None = None,
        connections: OrderConnections | None = None,
    ) -> None:
        self.size, self.wait_seconds = size, wait_seconds
        self.product_share = product_share or max(1, size // 3)
        self.connections = connections
        self._free = asyncio.Semaphore(size)
        # Per product: the writes holding its share (absent: none), and the writes waiting for it, first first.
        self._writing: dict[int, int] = {}
        self._waiting: dict[int, deque[asyncio.Future]] = {}

    @classmethod
    def for_pool(
        cls, engine: AsyncEngine | None, pool_size: int, max_overflow: int, wait_seconds: float
    ) -> "WriteSlots":
        """The slots of a pool of `pool_size` connections plus `max_overflow` (keeping connections of `engine`)."""
        size = max(1, pool_size + max_overflow - CONNECTIONS_KEPT_FOR_READS)
        return cls(size, wait_seconds, connections=None if engine is None else OrderConnections(engine))

    def hold(self, product_ids: Iterable[int] = ()) -> "_Hold":
        """Hold a slot, and a share of each product, for one order write: `async with slots.hold(ids): ...`."""
        return _Hold(self, sorted(set(product_ids)))

    async def close(self) -> None:
        """Give the kept connections back to the engine's pool."""
        if self.connections is not None:
            await self.connections.close()

    def writing(self, product_id: int) -> int:
        """How many writes hold a share of `product_id` now."""
        return self._writing.get(product_id, 0)

    def _take_share(self, product_id: int) -> asyncio.Future | None:
        """Take a share of the product now (None), or a future done when a finishing write hands one over."""
        writing = self._writing.get(product_id, 0)
        if writing < self.product_share and product_id not in self._waiting:
            self._writing[product_id] = writing + 1
            return None
        handed = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(product_id, deque()).append(handed)
        return handed

    def _give_back_share(self, product_id: int) -> None:
        waiting = self._waiting.get(product_id)
        while waiting:
            handed = waiting.popleft()
            if not handed.done():
                handed.set_result(None)  # the share goes to the first waiter: the count stays
                if not waiting:
                    del self._waiting[product_id]
                return
        self._waiting.pop(product_id, None)
        if self._writing[product_id] == 1:
            del self._writing[product_id]
        else:
            self._writing[product_id] -= 1


class _Hold:
    """One write's slot and product shares (a class, not a generator: this runs once per order)."""

    def __init__(self, slots: WriteSlots, product_ids: list[int]) -> None:
        self._slots, self._product_ids = slots, product_ids
        self._held: list[int] = []
        self._deadline: float | None = None

    async def __aenter__(self) -> None:
        slots = self._slots
        try:
            # Shares first, in id order: a write waiting for its product's share holds no slot.
            for product_id in self._product_ids:
                handed = slots._take_share(product_id)
                if handed is not None:
                    await self._wait_for(handed, product_id)
                self._held.append(product_id)
            if slots._free.locked():  # only a write that has to wait needs a timer
                async with asyncio.timeout_at(self._wait_until()):
                    await slots._free.acquire()
            else:
                await slots._free.acquire()
        except TimeoutError:
            waited_for_product = len(self._held) < len(self._product_ids)
            self._release_shares()
            raise OrderContention(
                f"{slots.product_share} order writes of product {self._product_ids[len(self._held)]} are waiting"
                " (its row is busy); please try again"
                if waited_for_product
                else f"all {slots.size} order writes this server runs at once are busy; please try again"
            ) from None
        except BaseException:
            self._release_shares()
            raise

    async def __aexit__(self, *exception) -> None:
        self._slots._free.release()
        self._release_shares()

    async def _wait_for(self, handed: asyncio.Future, product_id: int) -> None:
        # A timer rather than asyncio.timeout: a hot SKU's writes wait here by the dozen, every order.
        timer = asyncio.get_running_loop().call_at(self._wait_until(), _expire, handed)
        try:
            await handed
        except BaseException:
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                self._slots._give_back_share(product_id)  # handed over as the wait ended: pass it on
            raise
        finally:
            timer.cancel()

    def _wait_until(self) -> float:
        """The end of this write's one wait of at most wait_seconds, for its shares and its slot together."""
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._slots.wait_seconds
        return self._deadline

    def _release_shares(self) -> None:
        for product_id in self._held:
            self._slots._give_back_share(product_id)
        self._held = []


def _expire(handed: asyncio.Future) -> None:
    if not handed.done():
        handed.set_exception(TimeoutError())


async def get_write_slots(request: Request) -> WriteSlots:
    """The app's write slots."""
    return request.app.state.write_slots


WriteSlotsDep = Annotated[WriteSlots, Depends(get_write_slots)]
