"""Write slots: a bound on order writes per process, and per product a share that leaves the rest to other products."""

import asyncio
import time

import pytest

from api.write_slots import WriteSlots
from db.orders.errors import OrderContention


async def _hold_until(slots: WriteSlots, product_ids: list[int], release: asyncio.Event, held: list) -> None:
    async with slots.hold(product_ids):
        held.append(product_ids)
        await release.wait()


def test_writes_of_one_product_take_at_most_its_share_and_other_products_start_at_once():
    async def scenario():
        slots = WriteSlots(size=6, wait_seconds=0.3)
        release, held = asyncio.Event(), []
        waiting = [asyncio.create_task(_hold_until(slots, [7], release, held)) for _ in range(10)]
        await asyncio.sleep(0)  # every write of product 7 has asked
        assert slots.writing(7) == 2 == len(held)  # a third of the slots
        started = time.monotonic()
        async with slots.hold([8]), slots.hold([9]), slots.hold([8, 10]):
            waited = time.monotonic() - started
        deadline = time.monotonic() + 5
        while sum(task.done() for task in waiting) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the waiting writes give up after wait_seconds
        release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        return waited, outcomes, slots

    waited, outcomes, slots = asyncio.run(scenario())
    assert waited < 0.05
    assert sum(isinstance(outcome, OrderContention) for outcome in outcomes) == 8
    assert slots.writing(7) == 0


def test_a_share_given_back_goes_to_the_first_waiting_write():
    async def scenario():
        slots = WriteSlots(size=6, wait_seconds=5)  # a share of two
        release, held = asyncio.Event(), []
        first = [asyncio.create_task(_hold_until(slots, [7], release, held)) for _ in range(2)]
        await asyncio.sleep(0)
        later = asyncio.create_task(_hold_until(slots, [7], asyncio.Event(), held))
        await asyncio.sleep(0)
        assert len(held) == 2
        release.set()
        await asyncio.gather(*first)
        await asyncio.sleep(0)
        assert len(held) == 3 and slots.writing(7) == 1
        later.cancel()
        await asyncio.gather(later, return_exceptions=True)
        return slots

    slots = asyncio.run(scenario())
    assert slots.writing(7) == 0


def test_when_every_slot_is_busy_a_write_waits_then_is_refused_as_contention():
    async def scenario():
        slots = WriteSlots(size=2, wait_seconds=0.1)
        release, held = asyncio.Event(), []
        busy = [asyncio.create_task(_hold_until(slots, [product], release, held)) for product in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(OrderContention) as refused:
            async with slots.hold([3]):
                pass
        release.set()
        await asyncio.gather(*busy)
        async with slots.hold([3]):
            pass
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.code == "ORDER_CONTENTION" and refused.retry_after_seconds == 1
