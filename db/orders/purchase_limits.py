"""What one customer may hold: unpaid orders (MAX_UNPAID_ORDERS_PER_CUSTOMER) and pairs of a SKU (max_per_customer).

The decision is made in Python from `CustomerHoldings`; the placement's write re-reads the same
facts with the same SQL, after taking the customer's lock, and writes only if they still hold.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from db.orders.errors import PurchaseLimitExceeded, TooManyUnpaidOrders
from db.orders.pricing import OrderLine, ProductForSale
from db.statuses import sql_in

UNPAID_STATUS = "CREATED"
# The orders whose pairs a customer holds: unpaid, or paid.
HOLDING_STATUSES = ("CREATED", "CONFIRMED")

# SQL (psycopg parameters) of the facts, shared by the decision's read and the write's re-check.
UNPAID_ORDERS_OF_CUSTOMER = f"orders.customer_id = %(customer_id)s AND orders.status = '{UNPAID_STATUS}'"


def held_pairs_sql(product_id: str) -> str:
    """A scalar subquery: the pairs of `product_id` (an SQL expression) the customer holds."""
    return f"""(SELECT coalesce(sum(held.quantity), 0) FROM order_items AS held
                JOIN orders AS holder ON holder.id = held.order_id
                WHERE holder.customer_id = %(customer_id)s AND {sql_in("holder.status", HOLDING_STATUSES)}
                  AND held.product_id = {product_id})"""


@dataclass(frozen=True)
class CustomerHoldings:
    """What a customer holds now: unpaid orders, and pairs of each limited product across unpaid and paid orders."""

    unpaid_orders: int
    oldest_unpaid_expires_at: datetime | None
    # product id -> pairs, for the products of the order that have a max_per_customer.
    held_pairs: dict[int, int]


def check_purchase_limits(
    lines: list[OrderLine],
    catalog: dict[int, ProductForSale],
    holdings: CustomerHoldings,
    *,
    max_unpaid_orders: int,
    now: datetime,
) -> None:
    """Raise when this order would give the customer too many unpaid orders or too many pairs of a SKU."""
    if holdings.unpaid_orders >= max_unpaid_orders:
        raise TooManyUnpaidOrders(
            f"you already have {holdings.unpaid_orders} unpaid orders (at most {max_unpaid_orders});"
            " pay or cancel one, or wait until one expires",
            retry_after_seconds=_seconds_until(holdings.oldest_unpaid_expires_at, now),
        )
    for line in lines:
        limit = catalog[line.product_id].max_per_customer
        held = holdings.held_pairs.get(line.product_id, 0)
        if limit is not None and held + line.quantity > limit:
            raise PurchaseLimitExceeded(
                f"product {line.product_id} is limited to {limit} pairs per customer;"
                f" you hold {held} and asked for {line.quantity}"
            )


def _seconds_until(moment: datetime | None, now: datetime) -> int:
    if moment is None:
        return 1
    return max(1, math.ceil((moment - now).total_seconds()))
