"""A change of the catalog made between an order's decision and its write, as a concurrent writer would."""

import asyncio

import db.orders.placement as placement
from db.engine import create_engine
from db.orders.placement import PlaceOrder, place_order


def place_after_a_change(database_url, request: PlaceOrder, change, monkeypatch):
    """Place `request`, running `change` (SQL) right after the first decision was made, before its write."""
    decide = placement._decide
    changes = []

    async def decide_then_change(driver, *args):
        decided = await decide(driver, *args)
        if not changes:
            changes.append(change)
            await driver.execute(change)
        return decided

    monkeypatch.setattr(placement, "_decide", decide_then_change)

    async def run():
        engine = create_engine(database_url, pool_size=2)
        try:
            return await place_order(engine, request)
        finally:
            await engine.dispose()

    return asyncio.run(run())
