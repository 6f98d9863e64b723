"""Placing an order: decide, then commit stock, coupon use, order, key and OrderCreated at once, in one round trip.

The decision (is every product for sale, in stock, at what price, with what discount; may this
customer hold one more unpaid order and these pairs) is made in Python. For the common order (no
coupon) it is made from what this process already knows: the catalog as it last saw it
(db/orders/catalog_cache.py), for a customer holding nothing yet, with as much stock as asked for.
A coupon's terms, or products this process has not seen, are read first (one statement).

The write is one round trip and one transaction, three statements pipelined:

1. the locks: the request's Idempotency-Key (tried: a request with the same key in flight is told
   so at once) and then its customer (waited for: one customer's orders are written one at a
   time); and the new order's id, taken from the orders' sequence;
2. the guarded write: it checks the customer's facts (unpaid orders and pairs, held pairs, recent
   cancels) and that the key was not used meanwhile, then locks the products (in id order, as late
   as it can: a drop's hot row) and the coupon, checks that each product's terms are the version
   the decision read (products.updated_at: the rules are spelled once, here in Python, and the
   write compares versions) and its stock, and only then takes the stock, counts the coupon use,
   inserts the order, its lines and its key, and returns the order's JSON with its id (put in by
   db.outbox.events.with_order_id_sql, as the key's first response and the event's payload are).
   When a fact did not hold, it writes nothing; when the key was used, it returns the first response
   kept for it;
3. the order's OrderCreated event, by the outbox's one writer (nothing when no order was written).

Before any of this, an order for more than the stock this process last saw is refused from memory
(db/orders/catalog_cache.py, kept fresh by db/orders/stock_returns.py): a sold-out drop costs no
connection and no lock.

The customer's facts are re-read by statement 2, which starts after statement 1 holds the
customer's lock: in READ COMMITTED a statement sees what was committed before it started, so no
order of the same customer can have committed unseen. (Counted inside statement 1 instead, they
would come from a snapshot taken before its lock wait.)

So a wrong assumption (a price changed since this process saw it, the stock ran short, the
customer holds other orders) never writes a wrong order: the write returns only whether it wrote,
and a decision it refused costs a read of the facts as they are and a second write. (Returning the
facts from the write would save that read on a rare path but makes every order's plan dearer:
docs/performance.md.) A refusal is never made from assumptions: when they refuse the order, it is
decided again from a fresh read, which gives the exact error.
No lock is ever held across a round trip to the client: a hot SKU during a drop is locked only
while PostgreSQL runs the write.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import monotonic

from sqlalchemy.ext.asyncio import AsyncEngine

from db.advisory_locks import advisory_lock_id
from db.orders.catalog_cache import CatalogCache
from db.orders.contention import timeouts_as_contention
from db.orders.decision_facts import (
    TERMS_VERSION,
    DecisionFacts,
    assumed_facts,
    read_decision_facts,
)
from db.orders.driver import GENERIC_PLANS_SETTING, DriverConnection, OrderConnections, driver_connection
from db.orders.errors import (
    CouponNotFound,
    IdempotencyKeyInFlight,
    OrderContention,
    OrderRejected,
    TooManyUnpaidOrders,
)
from db.orders.holdings_cache import HoldingsCache
from db.orders.idempotency import LIVE_KEY, first_response, first_response_for_key, request_fingerprint
from db.orders.pricing import CouponTerms, OrderLine, PricedLine, coupon_discount, merge_lines, price_lines
from db.orders.purchase_limits import (
    UNPAID_ORDER_IDS,
    UNPAID_ORDERS_OF_CUSTOMER,
    CustomerHoldings,
    OrderLimits,
    cancelled_since_sql,
    check_order_size,
    check_purchase_limits,
    held_pairs_sql,
)
from db.orders.view import OrderItemView, OrderView
from db.outbox.events import APPEND_ORDER_EVENT, event_parameters, with_order_id_sql

# A decision is retried only when a fact really changed under it (stock ran short, a price or
# coupon was edited, the customer's other order went through); the facts read after such a write
# then usually raise the business error at once.
MAX_DECISIONS = 10

LOCKED_SETTING = "sneaker_orders.placement_locked"


@dataclass(frozen=True)
class PlaceOrder:
    """A customer's request for an order, as the API received it."""

    customer_id: str
    lines: list[OrderLine]
    coupon_id: int | None = None
    idempotency_key: str | None = None
    # The terms below come from Settings only (api/order_placement.py, OrderTerms); no defaults here.
    # How long the order may stay unpaid before it expires (ORDER_PAYMENT_TTL_SECONDS).
    payment_ttl: timedelta = field(kw_only=True)
    # How long the key replays its first response (IDEMPOTENCY_KEY_TTL_HOURS).
    idempotency_ttl: timedelta = field(kw_only=True)
    # MAX_UNPAID_ORDERS_PER_CUSTOMER, MAX_PAIRS_PER_LINE, MAX_PAIRS_PER_ORDER, MAX_UNPAID_PAIRS_PER_CUSTOMER,
    # CANCEL_COOLDOWN_SECONDS.
    limits: OrderLimits = field(kw_only=True)
    # The W3C traceparent of the request's span, stored with its OrderCreated event (None: not traced).
    traceparent: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """The order placed, as its JSON (the response, the first response of its key, the OrderCreated payload)."""

    order_id: int
    json: str
    # True when the order was placed by an earlier request with the same key.
    replayed: bool = False
    # Writes sent: more than one when a fact the decision assumed or read had changed by the write.
    writes: int = 1


@dataclass(frozen=True)
class Decision:
    """The order decided (its JSON with order_id 0, the id being taken by the write) and what it was decided from."""

    lines: list[PricedLine]
    coupon: CouponTerms | None
    facts: DecisionFacts
    subtotal: int
    discount: int
    created_at: datetime
    # When the order expires unpaid: created_at + the payment TTL, as the order row, its JSON and holdings say.
    expires_at: datetime
    order_json: str


@dataclass(frozen=True)
class Written:
    """How the guarded write ended: the order's id, or why not and what to go on with."""

    order_id: int | None
    # The order's JSON with its id (db.outbox.events.with_order_id_sql), when it was written.
    order_json: str | None
    # False: a request with the same key holds it.
    locked: bool
    # The first response kept for the key, when the key was used meanwhile: (fingerprint, response).
    kept: tuple[str, dict] | None


_ORDER_ID_SEQUENCE = "pg_get_serial_sequence('orders', 'id')"

_LOCK = f"""
WITH key AS MATERIALIZED (
    SELECT CAST(%(key_lock)s AS bigint) IS NULL OR pg_try_advisory_xact_lock(CAST(%(key_lock)s AS bigint)) AS free
), customer AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(CAST(%(customer_lock)s AS bigint)) FROM key WHERE free
)
-- Tells the next statement of this transaction whether it holds the key and the customer, takes
-- the new order's id (read back with currval by the write and by the outbox's writer), and asks
-- for generic plans for the statements after it (db/orders/driver.py).
SELECT set_config('{LOCKED_SETTING}', CASE WHEN key.free THEN 'yes' ELSE 'no' END, true),
       nextval({_ORDER_ID_SEQUENCE}), {GENERIC_PLANS_SETTING}
FROM key, (SELECT count(*) FROM customer) AS waited
"""

_WRITE_IF_UNCHANGED = f"""
WITH line AS (
    SELECT * FROM unnest(CAST(%(product_ids)s AS integer[]), CAST(%(quantities)s AS integer[]),
                         CAST(%(unit_prices)s AS integer[]), CAST(%(max_per_customer)s AS integer[]),
                         CAST(%(held_pairs)s AS integer[]), CAST(%(terms_versions)s AS bigint[]))
        AS line(product_id, quantity, unit_price, max_per_customer, held_pairs, terms_version)
), locked AS MATERIALIZED (
    SELECT coalesce(current_setting('{LOCKED_SETTING}', true), '') = 'yes' AS held
), products_unchanged AS MATERIALIZED (
    SELECT products.id FROM products JOIN line ON line.product_id = products.id
    -- The same set again, as the planner can use it (it cannot see into unnest): the products by their key.
    WHERE products.id = ANY(CAST(%(product_ids)s AS integer[])) AND (SELECT held FROM locked)
      -- The terms the decision priced and checked (price, active, max_per_customer) are those of this version.
      AND {TERMS_VERSION} = line.terms_version AND products.stock >= line.quantity
    ORDER BY products.id
    FOR UPDATE OF products
), coupon_unchanged AS MATERIALIZED (
    SELECT id FROM coupons
    WHERE (SELECT held FROM locked) AND id = %(coupon_id)s AND updated_at = %(coupon_terms_at)s
      AND (usage_limit IS NULL OR used_count < usage_limit)
    FOR UPDATE
), customer_unchanged AS MATERIALIZED (
    -- Exactly the unpaid orders the decision counted, so exactly their pairs: one probe of the customer's
    -- unpaid orders, no count of their lines.
    SELECT (SELECT {UNPAID_ORDER_IDS} FROM orders WHERE {UNPAID_ORDERS_OF_CUSTOMER})
           = CAST(%(unpaid_order_ids)s AS bigint[])
       AND NOT EXISTS (SELECT FROM line WHERE line.max_per_customer IS NOT NULL
                                          AND {held_pairs_sql("line.product_id")} <> line.held_pairs)
       -- The decision found no product of the order cooling down (else it refused).
       AND NOT {cancelled_since_sql("ANY(CAST(%(product_ids)s AS integer[]))")} AS holds
), key_taken AS MATERIALIZED (
    SELECT EXISTS (SELECT FROM idempotency_keys WHERE {LIVE_KEY}) AS taken
), decision_holds AS MATERIALIZED (
    -- Evaluated in this order, each only if those before it held: the products' row locks (the hot rows of a
    -- drop) come as late as they can, after every check that needs no lock. The coupon stays after the
    -- products: every transaction that locks both locks them in that order.
    SELECT (SELECT held FROM locked)
       AND NOT (SELECT taken FROM key_taken)
       AND (SELECT holds FROM customer_unchanged)
       AND (SELECT count(*) FROM products_unchanged) = cardinality(CAST(%(product_ids)s AS integer[]))
       AND (CAST(%(coupon_id)s AS integer) IS NULL OR EXISTS (SELECT FROM coupon_unchanged)) AS holds
), stock_taken AS (
    UPDATE products SET stock = products.stock - line.quantity FROM line
    WHERE (SELECT holds FROM decision_holds) AND products.id = line.product_id
      AND products.id = ANY(CAST(%(product_ids)s AS integer[]))
), coupon_used AS (
    UPDATE coupons SET used_count = used_count + 1
    WHERE (SELECT holds FROM decision_holds) AND id = %(coupon_id)s
), new_order AS (
    INSERT INTO orders (id, status, customer_id, coupon_id, subtotal, discount, total, created_at, expires_at)
    SELECT currval({_ORDER_ID_SEQUENCE}), 'CREATED', %(customer_id)s, %(coupon_id)s, %(subtotal)s, %(discount)s,
           %(total)s, %(created_at)s, %(expires_at)s
    WHERE (SELECT holds FROM decision_holds)
    RETURNING id, {with_order_id_sql("%(response)s", "id")} AS json
), lines AS (
    INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)
    SELECT new_order.id, line.product_id, line.quantity, line.unit_price, line.unit_price::bigint * line.quantity
    FROM new_order, line
), key_kept AS (
    -- The first response, replayed for this key until it expires; an expired row of the key is replaced.
    INSERT INTO idempotency_keys (customer_id, key, request_fingerprint, order_id, response, created_at, expires_at)
    SELECT %(customer_id)s, %(idempotency_key)s, %(request_fingerprint)s, new_order.id, CAST(new_order.json AS jsonb),
           %(created_at)s, %(key_expires_at)s
    FROM new_order WHERE CAST(%(idempotency_key)s AS text) IS NOT NULL
    ON CONFLICT (customer_id, key) DO UPDATE SET
        request_fingerprint = excluded.request_fingerprint, order_id = excluded.order_id,
        response = excluded.response, created_at = excluded.created_at, expires_at = excluded.expires_at
), outcome AS MATERIALIZED (
    SELECT (SELECT held FROM locked) AS locked, (SELECT taken FROM key_taken) AS key_taken,
           (SELECT id FROM new_order) AS order_id, (SELECT json FROM new_order) AS order_json
)
SELECT outcome.locked, outcome.order_id, outcome.order_json, kept.request_fingerprint, kept.response
FROM outcome
-- The key was used meanwhile: its first response.
LEFT JOIN LATERAL (
    SELECT request_fingerprint, response FROM idempotency_keys WHERE outcome.key_taken AND {LIVE_KEY}
) AS kept ON true
"""


async def place_order(
    engine: AsyncEngine | OrderConnections,
    request: PlaceOrder,
    *,
    catalog: CatalogCache | None = None,
    holdings: HoldingsCache | None = None,
    write_slot: Callable[[list[int]], AbstractAsyncContextManager] | None = None,
) -> PlacedOrder:
    """Place `request` as a CREATED order with its OrderCreated event, or raise and write nothing.

    `engine`: the engine whose pool the order's connection comes from, or the order path's kept connections.
    With `catalog`, orders without a coupon are decided from the products as this process last saw
    them, and the cache learns from every read of the facts (after a write that found one changed,
    too); with `holdings`, from what the customer held as this process's last write of their order left it.
    `write_slot(product_ids)` is held from the first database work to the last (api/write_slots.py); an
    order too large, or (without an Idempotency-Key, which may have a first response to give) one for a
    product this process knows sold out, is refused before it waits for one.
    """
    lines = merge_lines(request.lines)
    check_order_size(lines, request.limits)
    refused = None if catalog is None else catalog.refusal(lines)
    if refused is not None and request.idempotency_key is None:
        raise refused
    if write_slot is None:
        return await _place(engine, request, lines, refused, catalog, holdings)
    async with write_slot(_ids(lines)):
        return await _place(engine, request, lines, refused, catalog, holdings)


async def _place(
    engine: AsyncEngine | OrderConnections,
    request: PlaceOrder,
    lines: list[OrderLine],
    refused: OrderRejected | None,
    catalog: CatalogCache | None,
    holdings: HoldingsCache | None,
) -> PlacedOrder:
    """place_order's database work, for its merged `lines` and what memory refused them with (None: nothing)."""
    fingerprint = (
        None if request.idempotency_key is None else request_fingerprint(request.customer_id, lines, request.coupon_id)
    )
    with timeouts_as_contention("a product or coupon of this order"):
        async with driver_connection(engine) as driver:
            if refused is not None:
                # A keyed request is answered as it was the first time, whatever the rules say now.
                replay = await _first_response(driver, request, fingerprint)
                if replay is not None:
                    return replay
                raise refused
            known = None if catalog is None or request.coupon_id is not None else catalog.products(_ids(lines))
            if known is not None:
                facts = assumed_facts(known, None if holdings is None else holdings.of(request.customer_id))
            else:
                facts = await _read_facts(driver, request, lines, catalog)
            for writes in range(1, MAX_DECISIONS + 1):
                try:
                    decision = await _decide(driver, request, lines, facts, catalog)
                except (OrderRejected, TooManyUnpaidOrders):
                    # A retry of an order placed earlier is answered as it was, whatever the rules say now.
                    replay = await _first_response(driver, request, fingerprint)
                    if replay is not None:
                        return replay
                    raise
                written = await _write_if_unchanged(driver, decision, request, fingerprint)
                if written.order_id is not None:
                    if holdings is not None:
                        before = holdings.of(request.customer_id)
                        holdings.note(request.customer_id, _holdings_after(decision, written.order_id, before))
                    return PlacedOrder(written.order_id, written.order_json, writes=writes)
                if not written.locked:
                    raise IdempotencyKeyInFlight(
                        f"a request with Idempotency-Key {request.idempotency_key!r} is still being processed"
                    )
                if written.kept is not None:
                    first = first_response(request.idempotency_key, fingerprint, *written.kept)
                    return PlacedOrder(first.order_id, first.model_dump_json(), replayed=True, writes=writes)
                # A fact of the decision did not hold: decide again from the facts as they are now.
                facts = await _read_facts(driver, request, lines, catalog)
    raise OrderContention("the products or coupon of this order kept changing; please try again")


def _holdings_after(decision: Decision, order_id: int, known: CustomerHoldings | None) -> CustomerHoldings:
    """What the customer holds once the order of `decision` is written as `order_id`: one more unpaid order, its pairs.

    The pairs of limited products this order did not name are as `known` had them.
    """
    before, expires_at = decision.facts.holdings, decision.expires_at
    held = {**({} if known is None else known.held_pairs), **before.held_pairs}
    for line in decision.lines:
        if line.product_id in before.held_pairs:
            held[line.product_id] += line.quantity
    oldest = before.oldest_unpaid_expires_at
    pairs = sum(line.quantity for line in decision.lines)
    return CustomerHoldings(
        tuple(sorted((*before.unpaid_order_ids, order_id))),
        expires_at if oldest is None else min(oldest, expires_at),
        held,
        before.unpaid_pairs + pairs,
    )


def _ids(lines: list[OrderLine]) -> list[int]:
    return [line.product_id for line in lines]


async def _read_facts(
    driver: DriverConnection, request: PlaceOrder, lines: list[OrderLine], catalog: CatalogCache | None
) -> DecisionFacts:
    read_started_at = monotonic()
    cooldown_since = datetime.now(UTC) - request.limits.cancel_cooldown
    facts = await read_decision_facts(driver, request.customer_id, lines, request.coupon_id, cooldown_since)
    if catalog is not None:
        catalog.note(facts.catalog, read_started_at)
    return facts


async def _decide(
    driver: DriverConnection,
    request: PlaceOrder,
    lines: list[OrderLine],
    facts: DecisionFacts,
    catalog: CatalogCache | None,
) -> Decision:
    """The order these lines and coupon make from `facts`; raises on a broken rule, found in facts read, not assumed."""
    try:
        return _decision(request, lines, facts)
    except (OrderRejected, TooManyUnpaidOrders):
        if not facts.assumed:
            raise
    return _decision(request, lines, await _read_facts(driver, request, lines, catalog))


def _decision(request: PlaceOrder, lines: list[OrderLine], facts: DecisionFacts) -> Decision:
    now = datetime.now(UTC)
    expires_at = now + request.payment_ttl
    priced = price_lines(lines, facts.catalog)
    check_purchase_limits(lines, facts.catalog, facts.holdings, request.limits, now=now)
    subtotal = sum(line.line_total for line in priced)
    coupon = None
    if request.coupon_id is not None:
        coupon = facts.coupon
        if coupon is None:
            raise CouponNotFound(f"coupon {request.coupon_id} does not exist")
    discount = 0 if coupon is None else coupon_discount(coupon, subtotal, now)
    order = OrderView(
        order_id=0,  # taken by the write
        status="CREATED",
        customer_id=request.customer_id,
        coupon_id=request.coupon_id,
        subtotal=subtotal,
        discount=discount,
        total=subtotal - discount,
        items=[OrderItemView(**vars(line), line_total=line.line_total) for line in priced],
        created_at=now,
        expires_at=expires_at,
    )
    return Decision(priced, coupon, facts, subtotal, discount, now, expires_at, order.model_dump_json())


async def _write_if_unchanged(
    driver: DriverConnection, decision: Decision, request: PlaceOrder, fingerprint: str | None
) -> Written:
    """Write the order, its key and its OrderCreated event if the decision still holds; how it went."""
    facts, key, customer = decision.facts, request.idempotency_key, request.customer_id
    created = event_parameters(
        None, decision.order_json, "OrderCreated", decision.created_at, traceparent=request.traceparent
    )
    [_, rows, _] = await driver.run_pipelined(
        [
            (
                _LOCK,
                {
                    "key_lock": None if key is None else advisory_lock_id("idempotency-key", customer, key),
                    "customer_lock": advisory_lock_id("customer", customer),
                },
            ),
            (
                _WRITE_IF_UNCHANGED,
                {
                    "product_ids": [line.product_id for line in decision.lines],
                    "quantities": [line.quantity for line in decision.lines],
                    "unit_prices": [line.unit_price for line in decision.lines],
                    "max_per_customer": [facts.catalog[line.product_id].max_per_customer for line in decision.lines],
                    "terms_versions": [facts.catalog[line.product_id].version for line in decision.lines],
                    "held_pairs": [facts.holdings.held_pairs.get(line.product_id, 0) for line in decision.lines],
                    "unpaid_order_ids": list(facts.holdings.unpaid_order_ids),
                    "cooldown_since": decision.created_at - request.limits.cancel_cooldown,
                    "coupon_id": request.coupon_id,
                    "coupon_terms_at": None if decision.coupon is None else decision.coupon.updated_at,
                    "customer_id": customer,
                    "subtotal": decision.subtotal,
                    "discount": decision.discount,
                    "total": decision.subtotal - decision.discount,
                    "created_at": decision.created_at,
                    "expires_at": decision.expires_at,
                    "idempotency_key": key,
                    "request_fingerprint": fingerprint,
                    "response": decision.order_json,
                    "key_expires_at": decision.created_at + request.idempotency_ttl,
                },
            ),
            (APPEND_ORDER_EVENT, created),
        ],
        rows_of={1},
        generic_plans=False,
    )
    [(locked, order_id, order_json, kept_fingerprint, kept_response)] = rows
    return Written(
        order_id=order_id,
        order_json=order_json,
        locked=locked,
        kept=None if kept_fingerprint is None else (kept_fingerprint, kept_response),
    )


async def _first_response(driver: DriverConnection, request: PlaceOrder, fingerprint: str | None) -> PlacedOrder | None:
    """The first response to the request's Idempotency-Key, if it has one that was used."""
    if request.idempotency_key is None:
        return None
    first = await first_response_for_key(driver, request.customer_id, request.idempotency_key, fingerprint)
    return None if first is None else PlacedOrder(first.order_id, first.model_dump_json(), replayed=True)
