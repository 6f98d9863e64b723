"""The order as clients and event consumers see it, and how it is read back."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import autocommit_connection
from db.orders.errors import OrderNotFound
from db.statuses import OrderStatus
from db.tables import order_items, orders


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
    expires_at: datetime
    payment_id: str | None = None
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None


_ORDER = select(orders).where(orders.c.id == bindparam("order_id"))
_ORDER_FOR_UPDATE = _ORDER.with_for_update()
_LINES = (
    select(order_items.c.product_id, order_items.c.quantity, order_items.c.unit_price, order_items.c.line_total)
    .where(order_items.c.order_id == bindparam("order_id"))
    .order_by(order_items.c.product_id)
)


async def load_order(
    connection: AsyncConnection, order_id: int, *, for_update: bool = False, customer_id: str | None = None
) -> OrderView:
    """Read one order with its lines; with `for_update`, lock the order row until the transaction ends.

    With `customer_id`, an order of another customer is not found, exactly as a missing one.
    """
    order = (
        await connection.execute(_ORDER_FOR_UPDATE if for_update else _ORDER, {"order_id": order_id})
    ).one_or_none()
    if order is None or (customer_id is not None and order.customer_id != customer_id):
        raise OrderNotFound(f"order {order_id} does not exist")
    lines = await connection.execute(_LINES, {"order_id": order_id})
    return order_view(order, [OrderItemView(**line._mapping) for line in lines])


def order_view(order, items: list[OrderItemView]) -> OrderView:
    """The view of an `orders` row with its items."""
    return OrderView(
        order_id=order.id,
        status=order.status,
        customer_id=order.customer_id,
        coupon_id=order.coupon_id,
        subtotal=order.subtotal,
        discount=order.discount,
        total=order.total,
        items=items,
        created_at=order.created_at,
        expires_at=order.expires_at,
        payment_id=order.payment_id,
        confirmed_at=order.confirmed_at,
        cancelled_at=order.cancelled_at,
        expired_at=order.expired_at,
    )


async def read_order(engine: AsyncEngine, order_id: int, *, customer_id: str | None = None) -> OrderView:
    """The order as it is now (only if it is `customer_id`'s, when given)."""
    async with autocommit_connection(engine) as connection:
        return await load_order(connection, order_id, customer_id=customer_id)
