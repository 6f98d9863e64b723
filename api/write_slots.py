"""A bulkhead: order writes hold at most part of the connection pool, so that reads and /readyz always find one.

Writes are what wait on row locks (a hot SKU, a product locked from outside); without a bound they
could take every pooled connection for DATABASE_LOCK_TIMEOUT_MS and starve unrelated requests.
"""

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from api.problems import ApiProblem

# Connections of the pool (size plus overflow) that order writes leave to everything else.
CONNECTIONS_KEPT_FOR_READS = 2


class WriteSlots:
    """At most `size` order writes at once; a write that cannot start within `wait_seconds` is a 503."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size, self.wait_seconds = size, wait_seconds
        self._free = asyncio.Semaphore(size)

    @classmethod
    def for_pool(cls, pool_size: int, max_overflow: int, wait_seconds: float) -> "WriteSlots":
        """The slots of a pool of `pool_size` connections plus `max_overflow`."""
        return cls(max(1, pool_size + max_overflow - CONNECTIONS_KEPT_FOR_READS), wait_seconds)

    def hold(self) -> "WriteSlots":
        """Hold a slot for the length of one order write: `async with slots.hold(): ...`."""
        return self

    async def __aenter__(self) -> None:
        try:
            if self._free.locked():  # only a write that has to wait needs a timer
                async with asyncio.timeout(self.wait_seconds):
                    await self._free.acquire()
            else:
                await self._free.acquire()
        except TimeoutError:
            raise ApiProblem(
                503,
                "ORDER_CONTENTION",
                f"all {self.size} order writes this server runs at once are busy; please try again",
                headers={"Retry-After": "1"},
            ) from None

    async def __aexit__(self, *exception) -> None:
        self._free.release()


async def get_write_slots(request: Request) -> WriteSlots:
    """The app's write slots."""
    return request.app.state.write_slots


WriteSlotsDep = Annotated[WriteSlots, Depends(get_write_slots)]
