"""Idempotency keys of order placement: one order per key, replayed for the same request."""

import hashlib
import json

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.errors import IdempotencyKeyReused
from db.orders.pricing import OrderLine
from db.orders.view import OrderView
from db.outbox.events import ORDER_AGGREGATE
from db.tables import order_events, orders

_ORDER_WITH_KEY = select(orders.c.id, orders.c.request_fingerprint).where(orders.c.idempotency_key == bindparam("key"))
_FIRST_PAYLOAD = select(order_events.c.payload).where(
    order_events.c.aggregate_type == ORDER_AGGREGATE,
    order_events.c.aggregate_id == bindparam("aggregate_id"),
    order_events.c.sequence == 1,
)


def request_fingerprint(customer_id: str, lines: list[OrderLine], coupon_id: int | None) -> str:
    """A digest of what was asked, to tell a retry of the same request from another one."""
    canonical = json.dumps([customer_id, [[line.product_id, line.quantity] for line in lines], coupon_id])
    return hashlib.sha256(canonical.encode()).hexdigest()


async def first_response_for_key(connection: AsyncConnection, key: str, fingerprint: str) -> OrderView | None:
    """The order already placed with `key`, or None; raises if the key was used for another request."""
    placed = (await connection.execute(_ORDER_WITH_KEY, {"key": key})).one_or_none()
    if placed is None:
        return None
    if placed.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used for a different request")
    # The OrderCreated payload is, by definition, the order as the first response showed it.
    first_payload = await connection.scalar(_FIRST_PAYLOAD, {"aggregate_id": str(placed.id)})
    return OrderView.model_validate(first_payload)
