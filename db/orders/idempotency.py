"""Idempotency keys of order placement: per customer, the first response replayed until the key expires.

The first response is kept in `idempotency_keys` (written by the placement itself), not read back
from the outbox, so retention may delete the order's events. Past IDEMPOTENCY_KEY_TTL_HOURS the key
is free again: the next request with it places a new order.
"""

import hashlib
import json

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.orders.driver import DriverConnection
from db.orders.errors import IdempotencyKeyReused
from db.orders.pricing import OrderLine
from db.orders.view import OrderView

LIVE_KEY = (
    "idempotency_keys.customer_id = %(customer_id)s AND idempotency_keys.key = %(idempotency_key)s"
    " AND idempotency_keys.expires_at > now()"
)

_FIRST_RESPONSE = f"SELECT request_fingerprint, response FROM idempotency_keys WHERE {LIVE_KEY}"

_PURGE_EXPIRED = """
DELETE FROM idempotency_keys
WHERE (customer_id, key) IN (
    SELECT customer_id, key FROM idempotency_keys WHERE expires_at <= now()
    ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
"""


def request_fingerprint(customer_id: str, lines: list[OrderLine], coupon_id: int | None) -> str:
    """A digest of what was asked, to tell a retry of the same request from another one."""
    canonical = json.dumps([customer_id, [[line.product_id, line.quantity] for line in lines], coupon_id])
    return hashlib.sha256(canonical.encode()).hexdigest()


async def first_response_for_key(
    driver: DriverConnection, customer_id: str, key: str, fingerprint: str
) -> OrderView | None:
    """The first response to the customer's live `key`, or None; raises if the key was used for another request."""
    kept = await driver.execute(_FIRST_RESPONSE, {"customer_id": customer_id, "idempotency_key": key})
    return None if not kept else first_response(key, fingerprint, *kept[0])


def first_response(key: str, fingerprint: str, kept_fingerprint: str, kept_response: dict) -> OrderView:
    """The response kept for `key`, for a request with `fingerprint`; raises if the key was used for another request."""
    if kept_fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used for a different request")
    return OrderView.model_validate(kept_response)


async def purge_expired_idempotency_keys(engine: AsyncEngine, *, limit: int) -> int:
    """Delete up to `limit` keys past their TTL, in one short statement; how many were deleted."""
    async with autocommit_connection(engine) as connection:
        return (await connection.exec_driver_sql(_PURGE_EXPIRED, {"limit": limit})).rowcount
