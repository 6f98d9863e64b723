"""After placement, the customer may cancel an unpaid order: stock and coupon use go back, OrderCancelled is written."""

from datetime import UTC, datetime
from functools import partial

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.orders.contention import timeouts_as_contention
from db.orders.errors import InvalidOrderState
from db.orders.release import release_holdings
from db.orders.view import OrderView, load_order
from db.outbox.events import append_order_event
from db.tables import orders
from db.transactions import in_transaction


async def cancel_order(
    engine: AsyncEngine, order_id: int, *, customer_id: str, traceparent: str | None = None
) -> OrderView:
    """Cancel the customer's CREATED order: stock and coupon use go back, OrderCancelled is written (traced as
    `traceparent`)."""
    with timeouts_as_contention(f"order {order_id} or one of its products"):
        return await in_transaction(
            engine, partial(_cancel, order_id=order_id, customer_id=customer_id, traceparent=traceparent)
        )


async def _cancel(connection: AsyncConnection, order_id: int, customer_id: str, traceparent: str | None) -> OrderView:
    order = await load_order(connection, order_id, for_update=True, customer_id=customer_id)
    if order.status != "CREATED":
        raise InvalidOrderState(f"order {order_id} is {order.status}; only a CREATED order can be cancelled")
    await release_holdings(connection, order)
    now = datetime.now(UTC)
    await connection.execute(update(orders).where(orders.c.id == order_id).values(status="CANCELLED", cancelled_at=now))
    cancelled = order.model_copy(update={"status": "CANCELLED", "cancelled_at": now})
    await append_order_event(connection, cancelled, "OrderCancelled", now, traceparent=traceparent)
    return cancelled
