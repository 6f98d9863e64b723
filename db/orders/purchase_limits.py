"""What one customer may ask for and hold, so that one buyer cannot crowd the others out.

An order's size (MAX_PAIRS_PER_LINE, MAX_PAIRS_PER_ORDER), and what the customer would hold with it:
unpaid orders (MAX_UNPAID_ORDERS_PER_CUSTOMER), unpaid pairs of all SKUs (MAX_UNPAID_PAIRS_PER_CUSTOMER),
pairs of a SKU (its max_per_customer), and no product they cancelled less than CANCEL_COOLDOWN_SECONDS
ago (a hoarder who cancels and orders again leaves the pairs to others for that long).

The decision is made in Python from `CustomerHoldings`; the placement's write re-reads the same
facts with the same SQL, after taking the customer's lock, and writes only if they are unchanged
(the unpaid orders by their ids, which pin their pairs too).
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from db.orders.errors import (
    LinePairsExceeded,
    OrderPairsExceeded,
    PurchaseLimitExceeded,
    RecentlyCancelled,
    TooManyUnpaidOrders,
    UnpaidPairsExceeded,
)
from db.orders.pricing import OrderLine, ProductForSale
from db.statuses import sql_in

UNPAID_STATUS = "CREATED"
# The orders whose pairs a customer holds: unpaid, or paid.
HOLDING_STATUSES = ("CREATED", "CONFIRMED")

# SQL (psycopg parameters) of the facts, shared by the decision's read and the write's re-check.
UNPAID_ORDERS_OF_CUSTOMER = f"orders.customer_id = %(customer_id)s AND orders.status = '{UNPAID_STATUS}'"


# An aggregate over those orders: their ids, ascending (an empty array when none). An order's lines never
# change, and paying, cancelling or expiring an order takes it out: the same ids, the same unpaid pairs.
UNPAID_ORDER_IDS = "coalesce(array_agg(orders.id ORDER BY orders.id), '{}')"

# The pairs of every SKU in the customer's unpaid orders.
UNPAID_PAIRS_OF_CUSTOMER = f"""(SELECT coalesce(sum(unpaid.quantity), 0) FROM order_items AS unpaid
                               JOIN orders ON orders.id = unpaid.order_id WHERE {UNPAID_ORDERS_OF_CUSTOMER})"""


def cancelled_since_sql(products: str) -> str:
    """True when the customer cancelled an order of `products` after %(cooldown_since)s.

    `products`: an SQL expression `item.product_id` is compared with (`products.id`, `ANY(...)`).
    """
    return f"""EXISTS (SELECT FROM orders AS cancelled JOIN order_items AS item ON item.order_id = cancelled.id
                       WHERE cancelled.customer_id = %(customer_id)s AND cancelled.status = 'CANCELLED'
                         AND cancelled.cancelled_at > %(cooldown_since)s AND item.product_id = {products})"""


def held_pairs_sql(product_id: str) -> str:
    """A scalar subquery: the pairs of `product_id` (an SQL expression) the customer holds."""
    return f"""(SELECT coalesce(sum(held.quantity), 0) FROM order_items AS held
                JOIN orders AS holder ON holder.id = held.order_id
                WHERE holder.customer_id = %(customer_id)s AND {sql_in("holder.status", HOLDING_STATUSES)}
                  AND held.product_id = {product_id})"""


@dataclass(frozen=True)
class CustomerHoldings:
    """What a customer holds now: unpaid orders, and pairs of each limited product across unpaid and paid orders."""

    # The ids of their unpaid orders, ascending: what the placement's write pins (their pairs come with them).
    unpaid_order_ids: tuple[int, ...]
    oldest_unpaid_expires_at: datetime | None
    # product id -> pairs, for the products of the order that have a max_per_customer.
    held_pairs: dict[int, int]
    # Pairs of every SKU in their unpaid orders.
    unpaid_pairs: int = 0
    # The products of the order the customer cancelled within the cool-down.
    cooling: frozenset[int] = field(default_factory=frozenset)

    @property
    def unpaid_orders(self) -> int:
        return len(self.unpaid_order_ids)


@dataclass(frozen=True)
class OrderLimits:
    """The limits every order is placed under (settings of the same names, read in api/order_placement.py)."""

    max_unpaid_orders: int
    max_pairs_per_line: int
    max_pairs_per_order: int
    max_unpaid_pairs: int
    cancel_cooldown: timedelta


def check_order_size(lines: list[OrderLine], limits: OrderLimits) -> None:
    """Raise when a (merged) line or the whole order asks for more pairs than one order may."""
    for line in lines:
        if line.quantity > limits.max_pairs_per_line:
            raise LinePairsExceeded(
                f"product {line.product_id}: {line.quantity} pairs asked, at most {limits.max_pairs_per_line} a line"
            )
    pairs = sum(line.quantity for line in lines)
    if pairs > limits.max_pairs_per_order:
        raise OrderPairsExceeded(f"{pairs} pairs asked, at most {limits.max_pairs_per_order} an order")


def check_purchase_limits(
    lines: list[OrderLine],
    catalog: dict[int, ProductForSale],
    holdings: CustomerHoldings,
    limits: OrderLimits,
    *,
    now: datetime,
) -> None:
    """Raise when this order would give the customer too many unpaid orders or pairs, or a product cooling down."""
    if holdings.unpaid_orders >= limits.max_unpaid_orders:
        raise TooManyUnpaidOrders(
            f"you already have {holdings.unpaid_orders} unpaid orders (at most {limits.max_unpaid_orders});"
            " pay or cancel one, or wait until one expires",
            retry_after_seconds=_seconds_until(holdings.oldest_unpaid_expires_at, now),
        )
    for line in lines:
        if line.product_id in holdings.cooling:
            raise RecentlyCancelled(
                f"you cancelled an order of product {line.product_id} less than"
                f" {limits.cancel_cooldown.total_seconds():g} s ago; it is left to other buyers until then"
            )
        limit = catalog[line.product_id].max_per_customer
        held = holdings.held_pairs.get(line.product_id, 0)
        if limit is not None and held + line.quantity > limit:
            raise PurchaseLimitExceeded(
                f"product {line.product_id} is limited to {limit} pairs per customer;"
                f" you hold {held} and asked for {line.quantity}"
            )
    pairs = sum(line.quantity for line in lines)
    if holdings.unpaid_pairs + pairs > limits.max_unpaid_pairs:
        raise UnpaidPairsExceeded(
            f"you hold {holdings.unpaid_pairs} unpaid pairs and asked for {pairs}; at most"
            f" {limits.max_unpaid_pairs} unpaid pairs at once: pay or cancel an order first"
        )


def _seconds_until(moment: datetime | None, now: datetime) -> int:
    if moment is None:
        return 1
    return max(1, math.ceil((moment - now).total_seconds()))
