"""Placing an order: check, price, take stock and coupon, save, and write OrderCreated, in one transaction."""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.orders.coupons import lock_coupon
from db.orders.idempotency import first_response_for_key, request_fingerprint
from db.orders.pricing import OrderLine, PricedLine, coupon_discount, merge_lines, price_lines
from db.orders.stock import lock_products
from db.orders.view import OrderItemView, OrderView
from db.outbox.events import append_order_event
from db.transactions import in_transaction


@dataclass(frozen=True)
class PlaceOrder:
    """A customer's request for an order, as the API received it."""

    customer_id: str
    lines: list[OrderLine]
    coupon_id: int | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """The order placed, and whether it was placed by an earlier request with the same key."""

    order: OrderView
    replayed: bool = False


# Stock, coupon use, the order and its lines in one statement: the products and the coupon are
# already locked and checked, so this cannot oversell, and one round trip instead of four keeps
# the hot path short. The CHECK constraints on stock and used_count still guard it.
_WRITE_ORDER = text(
    """
    WITH stock_taken AS (
        UPDATE products SET stock = products.stock - line.quantity, updated_at = now()
        FROM unnest(CAST(:product_ids AS integer[]), CAST(:quantities AS integer[])) AS line(product_id, quantity)
        WHERE products.id = line.product_id
    ), coupon_used AS (
        UPDATE coupons SET used_count = used_count + 1, updated_at = now() WHERE id = :coupon_id
    ), new_order AS (
        INSERT INTO orders (status, customer_id, coupon_id, subtotal, discount, total,
                            idempotency_key, request_fingerprint, created_at)
        VALUES ('CREATED', :customer_id, :coupon_id, :subtotal, :discount, :total,
                :idempotency_key, :request_fingerprint, :created_at)
        RETURNING id
    ), lines AS (
        INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)
        SELECT new_order.id, line.product_id, line.quantity, line.unit_price, line.unit_price::bigint * line.quantity
        FROM new_order, unnest(CAST(:product_ids AS integer[]), CAST(:quantities AS integer[]),
                               CAST(:unit_prices AS integer[])) AS line(product_id, quantity, unit_price)
    )
    SELECT id FROM new_order
    """
)


async def place_order(engine: AsyncEngine, request: PlaceOrder) -> PlacedOrder:
    """Place `request` as a CREATED order with its OrderCreated event, or raise and write nothing."""
    return await in_transaction(engine, partial(_place_order, request=request))


async def _place_order(connection: AsyncConnection, request: PlaceOrder) -> PlacedOrder:
    lines = merge_lines(request.lines)
    fingerprint = request_fingerprint(request.customer_id, lines, request.coupon_id)
    if request.idempotency_key is not None:
        first = await first_response_for_key(connection, request.idempotency_key, fingerprint)
        if first is not None:
            return PlacedOrder(first, replayed=True)

    catalog = await lock_products(connection, [line.product_id for line in lines])
    priced = price_lines(lines, catalog)
    subtotal = sum(line.line_total for line in priced)
    now = datetime.now(UTC)
    discount = 0
    if request.coupon_id is not None:
        discount = coupon_discount(await lock_coupon(connection, request.coupon_id), subtotal, now)

    order_id = await _write_order(connection, request, priced, subtotal, discount, fingerprint, now)
    order = OrderView(
        order_id=order_id,
        status="CREATED",
        customer_id=request.customer_id,
        coupon_id=request.coupon_id,
        subtotal=subtotal,
        discount=discount,
        total=subtotal - discount,
        items=[OrderItemView(**vars(line), line_total=line.line_total) for line in priced],
        created_at=now,
    )
    await append_order_event(connection, order, "OrderCreated", now)
    return PlacedOrder(order)


async def _write_order(
    connection: AsyncConnection,
    request: PlaceOrder,
    priced: list[PricedLine],
    subtotal: int,
    discount: int,
    fingerprint: str,
    now: datetime,
) -> int:
    """Take the stock and the coupon use and insert the order with its lines; the new order's id."""
    return await connection.scalar(
        _WRITE_ORDER,
        {
            "product_ids": [line.product_id for line in priced],
            "quantities": [line.quantity for line in priced],
            "unit_prices": [line.unit_price for line in priced],
            "coupon_id": request.coupon_id,
            "customer_id": request.customer_id,
            "subtotal": subtotal,
            "discount": discount,
            "total": subtotal - discount,
            "idempotency_key": request.idempotency_key,
            "request_fingerprint": fingerprint,
            "created_at": now,
        },
    )
