"""Coupons: reading one for the order that uses it, and giving a use back."""

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.errors import CouponNotFound
from db.orders.pricing import CouponTerms
from db.tables import coupons

_TERMS = select(*(coupons.c[field] for field in CouponTerms.__dataclass_fields__)).where(
    coupons.c.id == bindparam("coupon_id")
)


async def read_coupon(connection: AsyncConnection, coupon_id: int) -> CouponTerms:
    """The coupon's terms and uses as they are now."""
    row = (await connection.execute(_TERMS, {"coupon_id": coupon_id})).one_or_none()
    if row is None:
        raise CouponNotFound(f"coupon {coupon_id} does not exist")
    return CouponTerms(**row._mapping)


async def give_back_coupon_use(connection: AsyncConnection, coupon_id: int) -> None:
    """Undo one use of the coupon (its order was cancelled)."""
    await connection.execute(
        update(coupons).where(coupons.c.id == coupon_id).values(used_count=coupons.c.used_count - 1)
    )
