"""Placing an order: decide from a read, then commit stock, coupon use, order, key and OrderCreated at once.

The decision (is every product for sale, in stock, at what price, with what discount; may this
customer hold one more unpaid order and these pairs) is made in Python from a plain read. The
write is one round trip and one transaction, three statements pipelined:

1. the locks: the request's Idempotency-Key (tried: a request with the same key in flight is told
   so at once) and then its customer (waited for: one customer's orders are written one at a time);
2. the guarded write: it locks the products (in id order) and the coupon, checks that every fact
   the decision used still holds, the customer's unpaid orders and held pairs included, and only
   then takes the stock, counts the coupon use, inserts the order, its lines and its key;
3. the order's OrderCreated event, by the outbox's one writer (nothing when no order was written).

The customer's facts are re-read by statement 2, which starts after statement 1 holds the
customer's lock: in READ COMMITTED a statement sees what was committed before it started, so no
order of the same customer can have committed unseen. (Counted inside statement 1 instead, they
would come from a snapshot taken before its lock wait.)

If a fact changed in between, nothing is written and the order is decided again from a fresh read.
No lock is ever held across a round trip to the client: a hot SKU during a drop is locked only for
the few hundred microseconds PostgreSQL needs to run the write.
"""

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.advisory_locks import advisory_lock_id
from db.engine import autocommit_connection
from db.orders.coupons import read_coupon
from db.orders.decision_facts import DecisionFacts, read_decision_facts
from db.orders.errors import IdempotencyKeyInFlight, OrderContention
from db.orders.idempotency import LIVE_KEY, first_response_for_key, request_fingerprint
from db.orders.pricing import CouponTerms, OrderLine, coupon_discount, merge_lines, price_lines
from db.orders.purchase_limits import UNPAID_ORDERS_OF_CUSTOMER, check_purchase_limits, held_pairs_sql
from db.orders.view import OrderItemView, OrderView
from db.outbox.events import order_event_statement
from db.pipeline import run_pipelined
from db.transactions import timed_out

# A decision is retried only when a fact really changed under it (stock ran short, a price or
# coupon was edited, the customer's other order went through); the fresh read then usually raises
# the business error at once.
MAX_DECISIONS = 10

LOCKED_SETTING = "sneaker_orders.placement_locked"


@dataclass(frozen=True)
class PlaceOrder:
    """A customer's request for an order, as the API received it."""

    customer_id: str
    lines: list[OrderLine]
    coupon_id: int | None = None
    idempotency_key: str | None = None
    # How long the order may stay unpaid before it expires (ORDER_PAYMENT_TTL_SECONDS).
    payment_ttl: timedelta = timedelta(seconds=900)
    # How long the key replays its first response (IDEMPOTENCY_KEY_TTL_HOURS).
    idempotency_ttl: timedelta = timedelta(hours=24)
    # MAX_UNPAID_ORDERS_PER_CUSTOMER.
    max_unpaid_orders: int = 3
    # The W3C traceparent of the request's span, stored with its OrderCreated event (None: not traced).
    traceparent: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """The order placed, and whether it was placed by an earlier request with the same key."""

    order: OrderView
    replayed: bool = False


@dataclass(frozen=True)
class Decision:
    """The order decided, and the facts it was decided from (which the write re-checks)."""

    order: OrderView
    coupon: CouponTerms | None
    facts: DecisionFacts


class Written(enum.Enum):
    """How the guarded write ended."""

    ORDER = "the order was written"
    KEY_IN_FLIGHT = "a request with the same key holds it"
    KEY_TAKEN = "a request with the same key committed meanwhile"
    FACTS_CHANGED = "a fact of the decision changed"


_LOCK = f"""
WITH key AS MATERIALIZED (
    SELECT CAST(%(key_lock)s AS bigint) IS NULL OR pg_try_advisory_xact_lock(CAST(%(key_lock)s AS bigint)) AS free
), customer AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(CAST(%(customer_lock)s AS bigint)) FROM key WHERE free
)
-- Tells the next statement of this transaction whether it holds the key and the customer.
SELECT set_config('{LOCKED_SETTING}', CASE WHEN key.free THEN 'yes' ELSE 'no' END, true)
FROM key, (SELECT count(*) FROM customer) AS waited
"""

_WRITE_IF_UNCHANGED = f"""
WITH line AS (
    SELECT * FROM unnest(CAST(%(product_ids)s AS integer[]), CAST(%(quantities)s AS integer[]),
                         CAST(%(unit_prices)s AS integer[]), CAST(%(max_per_customer)s AS integer[]),
                         CAST(%(held_pairs)s AS integer[]))
        AS line(product_id, quantity, unit_price, max_per_customer, held_pairs)
), locked AS MATERIALIZED (
    SELECT coalesce(current_setting('{LOCKED_SETTING}', true), '') = 'yes' AS held
), products_unchanged AS MATERIALIZED (
    SELECT products.id FROM products JOIN line ON line.product_id = products.id
    WHERE (SELECT held FROM locked)
      AND products.active AND products.price = line.unit_price AND products.stock >= line.quantity
      AND products.max_per_customer IS NOT DISTINCT FROM line.max_per_customer
    ORDER BY products.id
    FOR UPDATE OF products
), coupon_unchanged AS MATERIALIZED (
    SELECT id FROM coupons
    WHERE (SELECT held FROM locked) AND id = %(coupon_id)s AND updated_at = %(coupon_terms_at)s
      AND (usage_limit IS NULL OR used_count < usage_limit)
    FOR UPDATE
), customer_unchanged AS MATERIALIZED (
    SELECT (SELECT count(*) FROM orders WHERE {UNPAID_ORDERS_OF_CUSTOMER}) = %(unpaid_orders)s
       AND NOT EXISTS (SELECT FROM line WHERE line.max_per_customer IS NOT NULL
                                          AND {held_pairs_sql("line.product_id")} <> line.held_pairs) AS holds
), key_taken AS MATERIALIZED (
    SELECT EXISTS (SELECT FROM idempotency_keys WHERE {LIVE_KEY}) AS taken
), decision_holds AS MATERIALIZED (
    SELECT (SELECT held FROM locked)
       AND NOT (SELECT taken FROM key_taken)
       AND (SELECT count(*) FROM products_unchanged) = cardinality(CAST(%(product_ids)s AS integer[]))
       AND (CAST(%(coupon_id)s AS integer) IS NULL OR EXISTS (SELECT FROM coupon_unchanged))
       AND (SELECT holds FROM customer_unchanged) AS holds
), stock_taken AS (
    UPDATE products SET stock = products.stock - line.quantity FROM line
    WHERE (SELECT holds FROM decision_holds) AND products.id = line.product_id
), coupon_used AS (
    UPDATE coupons SET used_count = used_count + 1
    WHERE (SELECT holds FROM decision_holds) AND id = %(coupon_id)s
), new_order AS (
    INSERT INTO orders (id, status, customer_id, coupon_id, subtotal, discount, total, created_at, expires_at)
    SELECT %(order_id)s, 'CREATED', %(customer_id)s, %(coupon_id)s, %(subtotal)s, %(discount)s, %(total)s,
           %(created_at)s, %(expires_at)s
    WHERE (SELECT holds FROM decision_holds)
    RETURNING id
), lines AS (
    INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)
    SELECT new_order.id, line.product_id, line.quantity, line.unit_price, line.unit_price::bigint * line.quantity
    FROM new_order, line
), key_kept AS (
    -- The first response, replayed for this key until it expires; an expired row of the key is replaced.
    INSERT INTO idempotency_keys (customer_id, key, request_fingerprint, order_id, response, created_at, expires_at)
    SELECT %(customer_id)s, %(idempotency_key)s, %(request_fingerprint)s, new_order.id, CAST(%(response)s AS jsonb),
           %(created_at)s, %(key_expires_at)s
    FROM new_order WHERE CAST(%(idempotency_key)s AS text) IS NOT NULL
    ON CONFLICT (customer_id, key) DO UPDATE SET
        request_fingerprint = excluded.request_fingerprint, order_id = excluded.order_id,
        response = excluded.response, created_at = excluded.created_at, expires_at = excluded.expires_at
)
SELECT (SELECT held FROM locked) AS locked, (SELECT taken FROM key_taken) AS key_taken,
       (SELECT id FROM new_order) AS order_id
"""


async def place_order(engine: AsyncEngine, request: PlaceOrder) -> PlacedOrder:
    """Place `request` as a CREATED order with its OrderCreated event, or raise and write nothing."""
    lines = merge_lines(request.lines)
    fingerprint = request_fingerprint(request.customer_id, lines, request.coupon_id)
    try:
        # Reads are single statements; the write is one pipelined transaction.
        async with autocommit_connection(engine) as connection:
            order_id: int | None = None
            for _ in range(MAX_DECISIONS):
                if request.idempotency_key is not None:
                    first = await first_response_for_key(
                        connection, request.customer_id, request.idempotency_key, fingerprint
                    )
                    if first is not None:
                        return PlacedOrder(first, replayed=True)
                facts = await read_decision_facts(
                    connection,
                    request.customer_id,
                    [line.product_id for line in lines],
                    allocate_order_id=order_id is None,
                )
                order_id = order_id or facts.order_id
                decision = await _decide(connection, request, lines, facts, order_id)
                written = await _write_if_unchanged(connection, decision, request, fingerprint)
                if written is Written.ORDER:
                    return PlacedOrder(decision.order)
                if written is Written.KEY_IN_FLIGHT:
                    raise IdempotencyKeyInFlight(
                        f"a request with Idempotency-Key {request.idempotency_key!r} is still being processed"
                    )
    except DBAPIError as error:
        if timed_out(error):
            raise OrderContention(
                "a product or coupon of this order is locked by another transaction; please try again"
            ) from error
        raise
    raise OrderContention("the products or coupon of this order kept changing; please try again")


async def _decide(
    connection: AsyncConnection, request: PlaceOrder, lines: list[OrderLine], facts: DecisionFacts, order_id: int
) -> Decision:
    """The order these lines and coupon make from the facts read; raises on a broken rule."""
    now = datetime.now(UTC)
    priced = price_lines(lines, facts.catalog)
    check_purchase_limits(lines, facts.catalog, facts.holdings, max_unpaid_orders=request.max_unpaid_orders, now=now)
    subtotal = sum(line.line_total for line in priced)
    coupon = None if request.coupon_id is None else await read_coupon(connection, request.coupon_id)
    discount = 0 if coupon is None else coupon_discount(coupon, subtotal, now)
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
        expires_at=now + request.payment_ttl,
    )
    return Decision(order, coupon, facts)


async def _write_if_unchanged(
    connection: AsyncConnection, decision: Decision, request: PlaceOrder, fingerprint: str
) -> Written:
    """Write the order, its key and its OrderCreated event if the decision still holds; how it went."""
    order, facts = decision.order, decision.facts
    key = request.idempotency_key
    created = order_event_statement(order, "OrderCreated", order.created_at, traceparent=request.traceparent)
    [_, [(locked, key_taken, order_id)], _] = await run_pipelined(
        connection,
        [
            (
                _LOCK,
                {
                    "key_lock": None if key is None else advisory_lock_id("idempotency-key", order.customer_id, key),
                    "customer_lock": advisory_lock_id("customer", order.customer_id),
                },
            ),
            (
                _WRITE_IF_UNCHANGED,
                {
                    "product_ids": [item.product_id for item in order.items],
                    "quantities": [item.quantity for item in order.items],
                    "unit_prices": [item.unit_price for item in order.items],
                    "max_per_customer": [facts.catalog[item.product_id].max_per_customer for item in order.items],
                    "held_pairs": [facts.holdings.held_pairs.get(item.product_id, 0) for item in order.items],
                    "unpaid_orders": facts.holdings.unpaid_orders,
                    "coupon_id": order.coupon_id,
                    "coupon_terms_at": None if decision.coupon is None else decision.coupon.updated_at,
                    "order_id": order.order_id,
                    "customer_id": order.customer_id,
                    "subtotal": order.subtotal,
                    "discount": order.discount,
                    "total": order.total,
                    "created_at": order.created_at,
                    "expires_at": order.expires_at,
                    "idempotency_key": key,
                    "request_fingerprint": fingerprint,
                    "response": created.parameters["payload"],
                    "key_expires_at": order.created_at + request.idempotency_ttl,
                },
            ),
            (created.sql, created.parameters),
        ],
    )
    if order_id is not None:
        return Written.ORDER
    if not locked:
        return Written.KEY_IN_FLIGHT
    return Written.KEY_TAKEN if key_taken else Written.FACTS_CHANGED
