"""After placement: payment confirms an order, or the customer cancels it; each writes its event."""

from datetime import UTC, datetime
from functools import partial

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.orders.errors import InvalidOrderState, PaymentAmountMismatch
from db.orders.release import release_holdings
from db.orders.view import OrderView, load_order
from db.outbox.events import append_order_event
from db.tables import orders
from db.transactions import in_transaction


async def confirm_order(engine: AsyncEngine, order_id: int, payment_id: str, amount: int) -> OrderView:
    """Mark the order paid (CONFIRMED) with its OrderConfirmed event; a repeat of the same payment changes nothing."""
    return await in_transaction(engine, partial(_confirm, order_id=order_id, payment_id=payment_id, amount=amount))


async def cancel_order(engine: AsyncEngine, order_id: int) -> OrderView:
    """Cancel a CREATED order: stock and coupon use go back, OrderCancelled is written."""
    return await in_transaction(engine, partial(_cancel, order_id=order_id))


async def _confirm(connection: AsyncConnection, order_id: int, payment_id: str, amount: int) -> OrderView:
    order = await load_order(connection, order_id, for_update=True)
    if order.status == "CONFIRMED" and order.payment_id == payment_id:
        return order
    if order.status != "CREATED":
        raise InvalidOrderState(f"order {order_id} is {order.status} and cannot be confirmed by payment {payment_id}")
    if amount != order.total:
        raise PaymentAmountMismatch(f"payment of {amount} KRW does not match the order total of {order.total} KRW")
    now = datetime.now(UTC)
    await connection.execute(
        update(orders)
        .where(orders.c.id == order_id)
        .values(status="CONFIRMED", payment_id=payment_id, confirmed_at=now)
    )
    confirmed = order.model_copy(update={"status": "CONFIRMED", "payment_id": payment_id, "confirmed_at": now})
    await append_order_event(connection, confirmed, "OrderConfirmed", now)
    return confirmed


async def _cancel(connection: AsyncConnection, order_id: int) -> OrderView:
    order = await load_order(connection, order_id, for_update=True)
    if order.status != "CREATED":
        raise InvalidOrderState(f"order {order_id} is {order.status}; only a CREATED order can be cancelled")
    await release_holdings(connection, order)
    now = datetime.now(UTC)
    await connection.execute(update(orders).where(orders.c.id == order_id).values(status="CANCELLED", cancelled_at=now))
    cancelled = order.model_copy(update={"status": "CANCELLED", "cancelled_at": now})
    await append_order_event(connection, cancelled, "OrderCancelled", now)
    return cancelled
