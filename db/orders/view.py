"""The order as clients and event consumers see it, and how it is read back."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.orders.errors import OrderNotFound
from db.tables import order_items, orders

OrderStatus = Literal["CREATED", "CONFIRMED", "CANCELLED"]


class OrderItemView(BaseModel):
    """One line of an order, priced when the order was placed."""

    model_config = ConfigDict(frozen=True)

    product_id: int
    quantity: int
    unit_price: int
    line_total: int


class OrderView(BaseModel):
    """An order: the body of `GET /orders/{id}` and the payload of every order event."""

    model_config = ConfigDict(frozen=True)

    order_id: int
    status: OrderStatus
    customer_id: str
    coupon_id: int | None
    subtotal: int
    discount: int
    total: int
    items: list[OrderItemView]
    created_at: datetime
    payment_id: str | None = None
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None


async def load_order(connection: AsyncConnection, order_id: int, *, for_update: bool = False) -> OrderView:
    """Read one order with its lines; with `for_update`, lock the order row until the transaction ends."""
    order_query = select(orders).where(orders.c.id == order_id)
    if for_update:
        order_query = order_query.with_for_update()
    order = (await connection.execute(order_query)).one_or_none()
    if order is None:
        raise OrderNotFound(f"order {order_id} does not exist")
    lines = await connection.execute(
        select(order_items.c.product_id, order_items.c.quantity, order_items.c.unit_price, order_items.c.line_total)
        .where(order_items.c.order_id == order_id)
        .order_by(order_items.c.product_id)
    )
    return OrderView(
        order_id=order.id,
        status=order.status,
        customer_id=order.customer_id,
        coupon_id=order.coupon_id,
        subtotal=order.subtotal,
        discount=order.discount,
        total=order.total,
        items=[OrderItemView(**line._mapping) for line in lines],
        created_at=order.created_at,
        payment_id=order.payment_id,
        confirmed_at=order.confirmed_at,
        cancelled_at=order.cancelled_at,
    )


async def read_order(engine: AsyncEngine, order_id: int) -> OrderView:
    """The order as it is now."""
    async with engine.connect() as connection:
        return await load_order(connection, order_id)
