"""Placing an order: decide from the catalog, then commit stock, coupon use, order and OrderCreated at once.

The decision (is every product for sale, in stock, at what price, with what discount) is made in
Python from a plain read. The writes then happen in one statement, which is one transaction: it
locks the products (in id order) and the coupon, checks that every fact the decision used still
holds (price, active, stock >= quantity, coupon terms and remaining uses), and only then takes the
stock, counts the coupon use, inserts the order, its lines and its PENDING OrderCreated event.
If a fact changed in between, it writes nothing and the order is decided again from a fresh read.

No lock is ever held across a round trip to the client: a hot SKU during a drop is locked only
for the few hundred microseconds PostgreSQL needs to run that statement.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import autocommit_connection
from db.orders.coupons import read_coupon
from db.orders.errors import IdempotencyKeyInFlight, OrderContention
from db.orders.idempotency import first_response_for_key, request_fingerprint
from db.orders.pricing import CouponTerms, OrderLine, coupon_discount, merge_lines, price_lines
from db.orders.stock import read_products
from db.orders.view import OrderItemView, OrderView
from db.outbox.events import ORDER_AGGREGATE

# A decision is retried only when the catalog really changed under it (stock ran short, a price or
# coupon was edited); the fresh read then usually raises the business error at once.
MAX_DECISIONS = 10


@dataclass(frozen=True)
class PlaceOrder:
    """A customer's request for an order, as the API received it."""

    customer_id: str
    lines: list[OrderLine]
    coupon_id: int | None = None
    idempotency_key: str | None = None
    # How long the order may stay unpaid before it expires (ORDER_PAYMENT_TTL_SECONDS).
    payment_ttl: timedelta = timedelta(seconds=900)


@dataclass(frozen=True)
class PlacedOrder:
    """The order placed, and whether it was placed by an earlier request with the same key."""

    order: OrderView
    replayed: bool = False


_PLACE_IF_UNCHANGED = text(
    """
    WITH line AS (
        SELECT * FROM unnest(CAST(:product_ids AS integer[]), CAST(:quantities AS integer[]),
                             CAST(:unit_prices AS integer[])) AS line(product_id, quantity, unit_price)
    ), key_free AS MATERIALIZED (
        -- Held until this statement commits: a request with the same key meanwhile is told so.
        SELECT CAST(:idempotency_key AS text) IS NULL
            OR pg_try_advisory_xact_lock(hashtextextended(:idempotency_key, 0)) AS free
    ), products_unchanged AS MATERIALIZED (
        SELECT products.id FROM products JOIN line ON line.product_id = products.id
        WHERE products.active AND products.price = line.unit_price AND products.stock >= line.quantity
        ORDER BY products.id
        FOR UPDATE OF products
    ), coupon_unchanged AS MATERIALIZED (
        SELECT id FROM coupons
        WHERE id = :coupon_id AND updated_at = :coupon_terms_at
          AND (usage_limit IS NULL OR used_count < usage_limit)
        FOR UPDATE
    ), decision_holds AS MATERIALIZED (
        SELECT (SELECT free FROM key_free)
           AND (SELECT count(*) FROM products_unchanged) = cardinality(CAST(:product_ids AS integer[]))
           AND (CAST(:coupon_id AS integer) IS NULL OR EXISTS (SELECT FROM coupon_unchanged)) AS holds
    ), stock_taken AS (
        UPDATE products SET stock = products.stock - line.quantity FROM line
        WHERE (SELECT holds FROM decision_holds) AND products.id = line.product_id
    ), coupon_used AS (
        UPDATE coupons SET used_count = used_count + 1
        WHERE (SELECT holds FROM decision_holds) AND id = :coupon_id
    ), new_order AS (
        INSERT INTO orders (status, customer_id, coupon_id, subtotal, discount, total,
                            idempotency_key, request_fingerprint, created_at, expires_at)
        SELECT 'CREATED', :customer_id, :coupon_id, :subtotal, :discount, :total,
               :idempotency_key, :request_fingerprint, :created_at, :expires_at
        WHERE (SELECT holds FROM decision_holds)
        RETURNING id
    ), lines AS (
        INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)
        SELECT new_order.id, line.product_id, line.quantity, line.unit_price, line.unit_price::bigint * line.quantity
        FROM new_order, line
    ), created_event AS (
        -- The first event of the order; its payload is the order with the id assigned just above.
        INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, created_at)
        SELECT :event_id, :aggregate_type, new_order.id::text, 1, 'OrderCreated',
               jsonb_set(CAST(:payload AS jsonb), '{order_id}', to_jsonb(new_order.id)), :created_at
        FROM new_order
    )
    SELECT (SELECT free FROM key_free) AS key_free, (SELECT id FROM new_order) AS order_id
    """
)


async def place_order(engine: AsyncEngine, request: PlaceOrder) -> PlacedOrder:
    """Place `request` as a CREATED order with its OrderCreated event, or raise and write nothing."""
    lines = merge_lines(request.lines)
    fingerprint = request_fingerprint(request.customer_id, lines, request.coupon_id)
    # Each statement is its own transaction: the reads need none, the write is one statement.
    async with autocommit_connection(engine) as connection:
        for _ in range(MAX_DECISIONS):
            if request.idempotency_key is not None:
                first = await first_response_for_key(connection, request.idempotency_key, fingerprint)
                if first is not None:
                    return PlacedOrder(first, replayed=True)
            order, coupon = await _decide(connection, request, lines)
            try:
                key_free, order_id = await _place_if_unchanged(connection, order, coupon, request, fingerprint)
            except IntegrityError as error:
                if "uq_orders_idempotency_key" not in str(error.orig):
                    raise
                continue  # the same key's order committed meanwhile: the lookup above now finds it
            if not key_free:
                raise IdempotencyKeyInFlight(
                    f"a request with Idempotency-Key {request.idempotency_key!r} is still being processed"
                )
            if order_id is not None:
                return PlacedOrder(order.model_copy(update={"order_id": order_id}))
    raise OrderContention("the products or coupon of this order kept changing; please try again")


async def _decide(
    connection: AsyncConnection, request: PlaceOrder, lines: list[OrderLine]
) -> tuple[OrderView, CouponTerms | None]:
    """The order these lines and coupon make from the catalog as it is now; raises on a broken rule."""
    priced = price_lines(lines, await read_products(connection, [line.product_id for line in lines]))
    subtotal = sum(line.line_total for line in priced)
    now = datetime.now(UTC)
    coupon = None if request.coupon_id is None else await read_coupon(connection, request.coupon_id)
    discount = 0 if coupon is None else coupon_discount(coupon, subtotal, now)
    order = OrderView(
        order_id=0,  # assigned by the database when the order is written
        status="CREATED",
        customer_id=request.customer_id,
        coupon_id=request.coupon_id,
        subtotal=subtotal,
        discount=discount,
        total=subtotal - discount,
        items=[OrderItemView(**vars(line), line_total=line.line_total) for line in priced],
        created_at=now,
        expires_at=now + request.payment_ttl,
    )
    return order, coupon


async def _place_if_unchanged(
    connection: AsyncConnection,
    order: OrderView,
    coupon: CouponTerms | None,
    request: PlaceOrder,
    fingerprint: str,
) -> tuple[bool, int | None]:
    """Write the order if its decision still holds: (whether the key was free, the new order's id or None)."""
    result = await connection.execute(
        _PLACE_IF_UNCHANGED,
        {
            "product_ids": [item.product_id for item in order.items],
            "quantities": [item.quantity for item in order.items],
            "unit_prices": [item.unit_price for item in order.items],
            "coupon_id": order.coupon_id,
            "coupon_terms_at": None if coupon is None else coupon.updated_at,
            "customer_id": order.customer_id,
            "subtotal": order.subtotal,
            "discount": order.discount,
            "total": order.total,
            "idempotency_key": request.idempotency_key,
            "request_fingerprint": fingerprint,
            "created_at": order.created_at,
            "expires_at": order.expires_at,
            "event_id": uuid.uuid4(),
            "aggregate_type": ORDER_AGGREGATE,
            "payload": json.dumps(order.model_dump(mode="json")),
        },
    )
    key_free, order_id = result.one()
    return key_free, order_id
