"""Coupons: giving a use back. (An order reads a coupon's terms with the facts of its decision.)"""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import coupons


async def give_back_coupon_use(connection: AsyncConnection, coupon_id: int) -> None:
    """Undo one use of the coupon (its order was cancelled)."""
    await connection.execute(
        update(coupons).where(coupons.c.id == coupon_id).values(used_count=coupons.c.used_count - 1)
    )
