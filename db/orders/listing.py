"""A customer's orders, newest first, a page at a time (keyset pagination: stable while orders are added)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.orders.view import OrderItemView, OrderView, order_view
from db.statuses import OrderStatus
from db.tables import order_items, orders

_ITEM_FIELDS = [order_items.c[name] for name in OrderItemView.model_fields]
_ITEMS_OF = (
    select(order_items.c.order_id, *_ITEM_FIELDS)
    .where(order_items.c.order_id == any_(bindparam("order_ids", type_=ARRAY(BigInteger))))
    .order_by(order_items.c.order_id, order_items.c.product_id)
)


@dataclass(frozen=True)
class OrderCursor:
    """Where a page ended: the next page starts with the orders placed before this one."""

    created_at: datetime
    order_id: int


@dataclass(frozen=True)
class OrderPage:
    """A page of orders, newest first, and where the next page starts (None: this was the last)."""

    orders: list[OrderView]
    next_cursor: OrderCursor | None


async def list_orders(
    engine: AsyncEngine,
    customer_id: str,
    *,
    status: OrderStatus | None = None,
    limit: int,
    after: OrderCursor | None = None,
) -> OrderPage:
    """Up to `limit` of the customer's orders (of `status`, when given), newest first, after `after`."""
    query = select(orders).where(orders.c.customer_id == customer_id)
    if status is not None:
        query = query.where(orders.c.status == status)
    if after is not None:
        query = query.where(tuple_(orders.c.created_at, orders.c.id) < tuple_(after.created_at, after.order_id))
    query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit + 1)
    async with autocommit_connection(engine) as connection:
        rows = (await connection.execute(query)).all()
        page, more = rows[:limit], len(rows) > limit
        items: dict[int, list[OrderItemView]] = defaultdict(list)
        if page:
            for item in await connection.execute(_ITEMS_OF, {"order_ids": [row.id for row in page]}):
                items[item.order_id].append(OrderItemView.model_validate(item, from_attributes=True))
    last = page[-1] if more else None
    return OrderPage(
        orders=[order_view(row, items[row.id]) for row in page],
        next_cursor=None if last is None else OrderCursor(last.created_at, last.id),
    )
