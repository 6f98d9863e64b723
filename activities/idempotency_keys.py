"""MERGE POINT — the retention's step that purges expired idempotency keys, behind one small adapter.

The keys and their first responses live in the orders branch's table, purged by its
`db/orders/idempotency.py: purge_expired_idempotency_keys(engine, *, limit: int) -> int`. Until that
function is merged, this adapter answers None ("not available in this build"), which the retention
run reports in words rather than pretending it purged anything. At merge: import it directly here.
"""

from sqlalchemy.ext.asyncio import AsyncEngine


async def purge_expired_idempotency_keys(engine: AsyncEngine, *, limit: int) -> int | None:
    """Delete up to `limit` idempotency keys past IDEMPOTENCY_KEY_TTL_HOURS; how many, or None if not available."""
    try:
        from db.orders.idempotency import purge_expired_idempotency_keys as purge
    except ImportError:
        return None
    return await purge(engine, limit=limit)
