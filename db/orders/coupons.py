"""Coupons: locking one for the order that uses it, and giving a use back."""

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.errors import CouponNotFound
from db.orders.pricing import CouponTerms
from db.tables import coupons

_TERMS = [
    coupons.c.id,
    coupons.c.code,
    coupons.c.discount_type,
    coupons.c.discount_value,
    coupons.c.max_discount,
    coupons.c.min_order_amount,
    coupons.c.starts_at,
    coupons.c.expires_at,
    coupons.c.usage_limit,
    coupons.c.used_count,
    coupons.c.active,
]


async def lock_coupon(connection: AsyncConnection, coupon_id: int) -> CouponTerms:
    """Lock the coupon until the transaction ends, so its uses are counted one order at a time."""
    row = (await connection.execute(select(*_TERMS).where(coupons.c.id == coupon_id).with_for_update())).one_or_none()
    if row is None:
        raise CouponNotFound(f"coupon {coupon_id} does not exist")
    return CouponTerms(**row._mapping)


async def give_back_coupon_use(connection: AsyncConnection, coupon_id: int) -> None:
    """Undo one use of the coupon (its order was cancelled)."""
    await connection.execute(
        update(coupons).where(coupons.c.id == coupon_id).values(used_count=coupons.c.used_count - 1)
    )
