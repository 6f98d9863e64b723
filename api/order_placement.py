"""Placing a customer's order from a validated `POST /orders` request (api/routes/orders.py)."""

from dataclasses import dataclass
from datetime import timedelta

from api.metrics import ORDER_WRITES_REDECIDED, ORDERS_PLACED
from api.schemas import PlaceOrderBody
from api.write_slots import WriteSlots
from db.orders.placement import PlacedOrder, PlaceOrder, place_order
from db.orders.pricing import OrderLine
from db.orders.purchase_limits import OrderLimits
from sneaker_orders.settings import Settings
from sneaker_orders.tracing import current_traceparent


@dataclass(frozen=True)
class OrderTerms:
    """The settings every order is placed under, read once."""

    payment_ttl: timedelta
    idempotency_ttl: timedelta
    limits: OrderLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> "OrderTerms":
        return cls(
            timedelta(seconds=settings.order_payment_ttl_seconds),
            timedelta(hours=settings.idempotency_key_ttl_hours),
            OrderLimits(
                max_unpaid_orders=settings.max_unpaid_orders_per_customer,
                max_pairs_per_line=settings.max_pairs_per_line,
                max_pairs_per_order=settings.max_pairs_per_order,
                max_unpaid_pairs=settings.max_unpaid_pairs_per_customer,
                cancel_cooldown=timedelta(seconds=settings.cancel_cooldown_seconds),
            ),
        )


async def place_for_customer(state, customer: str, body: PlaceOrderBody, idempotency_key: str | None) -> PlacedOrder:
    """Place `body` for `customer` within a write slot of the app whose `state` is given; counted when new."""
    terms: OrderTerms = state.order_terms
    request = PlaceOrder(
        customer_id=customer,
        lines=[OrderLine(line.product_id, line.quantity) for line in body.items],
        coupon_id=body.coupon_id,
        idempotency_key=idempotency_key,
        payment_ttl=terms.payment_ttl,
        idempotency_ttl=terms.idempotency_ttl,
        limits=terms.limits,
        traceparent=current_traceparent(),
    )
    write_slots: WriteSlots = state.write_slots
    # A sold-out drop is answered at once, never queued for a write slot behind the orders that wait for its row.
    placed = await place_order(
        write_slots.connections,
        request,
        catalog=state.catalog_cache,
        holdings=state.holdings_cache,
        write_slot=write_slots.hold,
    )
    if not placed.replayed:
        ORDERS_PLACED.inc()
    if placed.writes > 1:
        ORDER_WRITES_REDECIDED.inc(placed.writes - 1)
    return placed


async def send_placed(send, placed: PlacedOrder) -> None:
    """Answer 201 with the order's JSON, where the order is, and whether this is a replay (ASGI `send`)."""
    body = placed.json.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"location", b"/orders/%d" % placed.order_id),
    ]
    if placed.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})
