"""Giving back what an unpaid order held: its pairs to stock and its coupon use."""

from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.coupons import give_back_coupon_use
from db.orders.pricing import OrderLine
from db.orders.stock import lock_products, return_stock
from db.orders.view import OrderView


async def release_holdings(connection: AsyncConnection, order: OrderView) -> None:
    """Return the order's pairs to stock and its coupon use (the caller holds the order's row lock)."""
    lines = [OrderLine(item.product_id, item.quantity) for item in order.items]
    await lock_products(connection, [line.product_id for line in lines])
    await return_stock(connection, lines)
    if order.coupon_id is not None:
        await give_back_coupon_use(connection, order.coupon_id)
