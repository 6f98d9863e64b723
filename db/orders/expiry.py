"""Unpaid orders expire: past `expires_at`, a CREATED order becomes EXPIRED and gives back what it held."""

from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.orders.release import release_holdings
from db.orders.view import OrderView, load_order
from db.outbox.events import append_order_event
from db.tables import orders
from db.transactions import in_transaction

# The most overdue unpaid order nobody else is working on; SKIP LOCKED lets several expiry runs, and
# a confirm of the same order, go on without waiting for each other.
_NEXT_DUE = (
    select(orders.c.id)
    .where(orders.c.status == "CREATED", orders.c.expires_at <= func.now())
    .order_by(orders.c.expires_at, orders.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)


async def expire_due_orders(engine: AsyncEngine, *, limit: int, traceparent: str | None = None) -> list[int]:
    """Expire up to `limit` overdue unpaid orders, each in its own short transaction (traced as `traceparent`);
    the ids expired."""
    expired: list[int] = []
    while len(expired) < limit:
        order_id = await in_transaction(engine, partial(_expire_next_due, traceparent=traceparent))
        if order_id is None:
            break
        expired.append(order_id)
    return expired


async def expire_locked_order(
    connection: AsyncConnection, order: OrderView, *, traceparent: str | None = None
) -> OrderView:
    """Expire a CREATED order whose row this transaction has locked: stock and coupon use back, OrderExpired."""
    await release_holdings(connection, order)
    now = await connection.scalar(select(func.now()))  # the database's clock decides deadlines
    await connection.execute(
        update(orders).where(orders.c.id == order.order_id).values(status="EXPIRED", expired_at=now)
    )
    expired = order.model_copy(update={"status": "EXPIRED", "expired_at": now})
    await append_order_event(connection, expired, "OrderExpired", now, traceparent=traceparent)
    return expired


async def _expire_next_due(connection: AsyncConnection, traceparent: str | None) -> int | None:
    order_id = await connection.scalar(_NEXT_DUE)
    if order_id is None:
        return None
    order = await load_order(connection, order_id, for_update=True)
    await expire_locked_order(connection, order, traceparent=traceparent)
    return order_id
