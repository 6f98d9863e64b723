"""Idempotency keys of order placement: one order per key, replayed for the same request."""

import hashlib
import json

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from db.orders.pricing import OrderLine
from db.orders.view import OrderView
from db.outbox.events import ORDER_AGGREGATE
from db.tables import order_events, orders

# Held until the transaction ends: a second request with the key while the first is still being
# placed is told so at once, instead of waiting on the unique index and failing.
_TRY_LOCK_KEY = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))")


def request_fingerprint(customer_id: str, lines: list[OrderLine], coupon_id: int | None) -> str:
    """A digest of what was asked, to tell a retry of the same request from another one."""
    canonical = json.dumps([customer_id, [[line.product_id, line.quantity] for line in lines], coupon_id])
    return hashlib.sha256(canonical.encode()).hexdigest()


async def first_response_for_key(connection: AsyncConnection, key: str, fingerprint: str) -> OrderView | None:
    """Take the key for this transaction; the order it already placed, or None if it is new."""
    if not await connection.scalar(_TRY_LOCK_KEY, {"key": key}):
        raise IdempotencyKeyInFlight(f"a request with Idempotency-Key {key!r} is still being processed")
    placed = (
        await connection.execute(
            select(orders.c.id, orders.c.request_fingerprint).where(orders.c.idempotency_key == key)
        )
    ).one_or_none()
    if placed is None:
        return None
    if placed.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used for a different request")
    # The OrderCreated payload is, by definition, the order as the first response showed it.
    first_payload = await connection.scalar(
        select(order_events.c.payload).where(
            order_events.c.aggregate_type == ORDER_AGGREGATE,
            order_events.c.aggregate_id == str(placed.id),
            order_events.c.sequence == 1,
        )
    )
    return OrderView.model_validate(first_payload)
