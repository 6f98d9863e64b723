"""Expiring orders in a test: moving an order past its deadline, and running expiry as the workflow's activity would."""

import asyncio

from db.engine import create_engine
from db.orders.expiry import expire_due_orders


def expire(database_url, limit=100):
    """Expire due orders (at most `limit`) through a fresh engine; what was expired."""

    async def run():
        engine = create_engine(database_url, pool_size=1)
        try:
            return await expire_due_orders(engine, limit=limit)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def past_deadline(db, order):
    """Move `order`'s deadline a second into the past."""
    db.execute("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = %s", (order["order_id"],))
