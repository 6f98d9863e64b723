"""Payments: a verified webhook of the payment provider confirms an order, once, and only before its deadline.

Every webhook is answered once: its answer (the order confirmed, or the error) is stored with its
webhook-id and order in the same transaction, and a repeated webhook-id for the same order gets
that answer again, changing nothing; for another order it is refused (WEBHOOK_ID_REUSED), so one
order's answer is never given to another. A payment_id pays at most one order. A payment for a
CREATED order past its expires_at is refused with ORDER_EXPIRED, and the order is expired in that
same transaction, so a payment is never accepted after the deadline; a confirm racing the expiry
schedule on one order waits for its row lock, so exactly one of them wins.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.advisory_locks import advisory_lock_id
from db.engine import autocommit_connection
from db.orders.contention import timeouts_as_contention
from db.orders.errors import (
    InvalidOrderState,
    OrderError,
    OrderExpired,
    OrderNotFound,
    PaymentAmountMismatch,
    WebhookIdReused,
)
from db.orders.expiry import expire_locked_order
from db.orders.view import OrderView, load_order
from db.outbox.events import append_order_event
from db.tables import orders, payment_webhooks
from db.transactions import in_transaction

CONFIRMED = "CONFIRMED"

# The answers a webhook can get from the domain, stored and replayed by code.
REPLAYED_ERRORS: dict[str, type[OrderError]] = {
    kind.code: kind for kind in (OrderNotFound, InvalidOrderState, OrderExpired, PaymentAmountMismatch)
}

# One webhook, and one payment, is handled by one transaction at a time; the database's clock decides deadlines.
_LOCKS = text("SELECT pg_advisory_xact_lock(:webhook_lock), pg_advisory_xact_lock(:payment_lock), now() AS now")
_ANSWER = select(payment_webhooks.c.order_id, payment_webhooks.c.outcome, payment_webhooks.c.response).where(
    payment_webhooks.c.webhook_id == bindparam("webhook_id")
)
_PAID_ELSEWHERE = select(orders.c.id).where(
    orders.c.payment_id == bindparam("payment_id"), orders.c.id != bindparam("order_id")
)
_PURGE_ANSWERED = text(
    """
    DELETE FROM payment_webhooks WHERE webhook_id IN (
        SELECT webhook_id FROM payment_webhooks WHERE processed_at < now() - CAST(:older_than AS interval)
        ORDER BY processed_at LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    """
)


@dataclass(frozen=True)
class PaymentWebhook:
    """The payment provider's message, its signature already verified: this payment of this amount completed."""

    webhook_id: str
    order_id: int
    payment_id: str
    amount: int


async def confirm_payment(engine: AsyncEngine, webhook: PaymentWebhook, *, traceparent: str | None = None) -> OrderView:
    """Confirm the order paid by `webhook` (CONFIRMED, OrderConfirmed written, traced as `traceparent`), or raise;
    a repeat answers the same."""
    with timeouts_as_contention(f"order {webhook.order_id}"):
        answer = await in_transaction(engine, partial(_answer_once, webhook=webhook, traceparent=traceparent))
    if isinstance(answer, OrderError):
        raise answer
    return answer


async def _answer_once(
    connection: AsyncConnection, webhook: PaymentWebhook, traceparent: str | None
) -> OrderView | OrderError:
    locks = {
        "webhook_lock": advisory_lock_id("payment-webhook", webhook.webhook_id),
        "payment_lock": advisory_lock_id("payment", webhook.payment_id),
    }
    now = (await connection.execute(_LOCKS, locks)).one().now
    answered = (await connection.execute(_ANSWER, {"webhook_id": webhook.webhook_id})).one_or_none()
    if answered is not None:
        if answered.order_id != webhook.order_id:
            raise WebhookIdReused(
                f"webhook-id {webhook.webhook_id} was already used for order {answered.order_id}, not"
                f" order {webhook.order_id}: each webhook needs an id of its own"
            )
        return _replay(answered.outcome, answered.response)
    try:
        answer: OrderView | OrderError = await _confirm(connection, webhook, now, traceparent)
    except tuple(REPLAYED_ERRORS.values()) as refusal:
        answer = refusal
    await connection.execute(
        insert(payment_webhooks).values(
            webhook_id=webhook.webhook_id,
            order_id=webhook.order_id,
            payment_id=webhook.payment_id,
            outcome=answer.code if isinstance(answer, OrderError) else CONFIRMED,
            response={"detail": answer.detail} if isinstance(answer, OrderError) else answer.model_dump(mode="json"),
        )
    )
    return answer


async def _confirm(
    connection: AsyncConnection, webhook: PaymentWebhook, now: datetime, traceparent: str | None
) -> OrderView:
    order = await load_order(connection, webhook.order_id, for_update=True)
    if order.status == "CONFIRMED" and order.payment_id == webhook.payment_id:
        return order
    if order.status == "EXPIRED":
        raise OrderExpired(f"order {order.order_id} expired at {order.expires_at.isoformat()}; refund the payment")
    if order.status != "CREATED":
        raise InvalidOrderState(
            f"order {order.order_id} is {order.status} and cannot be confirmed by payment {webhook.payment_id}"
        )
    if now >= order.expires_at:
        await expire_locked_order(connection, order, traceparent=traceparent)
        raise OrderExpired(
            f"order {order.order_id} was due for payment by {order.expires_at.isoformat()} and has expired;"
            " refund the payment"
        )
    paid = await connection.scalar(_PAID_ELSEWHERE, {"payment_id": webhook.payment_id, "order_id": order.order_id})
    if paid is not None:
        raise InvalidOrderState(f"payment {webhook.payment_id} already paid order {paid}")
    if webhook.amount != order.total:
        raise PaymentAmountMismatch(
            f"payment of {webhook.amount} KRW does not match the order total of {order.total} KRW"
        )
    await connection.execute(
        update(orders)
        .where(orders.c.id == order.order_id)
        .values(status="CONFIRMED", payment_id=webhook.payment_id, confirmed_at=now)
    )
    confirmed = order.model_copy(update={"status": "CONFIRMED", "payment_id": webhook.payment_id, "confirmed_at": now})
    await append_order_event(connection, confirmed, "OrderConfirmed", now, traceparent=traceparent)
    return confirmed


async def purge_answered_webhooks(engine: AsyncEngine, *, older_than: timedelta, limit: int) -> int:
    """Forget up to `limit` webhook answers older than `older_than` (longer than the provider retries); how many."""
    async with autocommit_connection(engine) as connection:
        return (await connection.execute(_PURGE_ANSWERED, {"older_than": older_than, "limit": limit})).rowcount


def _replay(outcome: str, response: dict) -> OrderView | OrderError:
    if outcome == CONFIRMED:
        return OrderView.model_validate(response)
    return REPLAYED_ERRORS[outcome](response["detail"])
