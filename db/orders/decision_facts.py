"""What placing an order is decided from, read in one statement: the products, what the customer holds, an id."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.pricing import ProductForSale
from db.orders.purchase_limits import UNPAID_ORDERS_OF_CUSTOMER, CustomerHoldings, held_pairs_sql

_READ = f"""
WITH customer AS MATERIALIZED (
    SELECT count(*) AS unpaid_orders, min(orders.expires_at) AS oldest_unpaid_expires_at,
           -- The new order's id, taken now so that its first response and event are serialised once, whole.
           CASE WHEN %(allocate_order_id)s THEN nextval(pg_get_serial_sequence('orders', 'id')) END AS order_id
    FROM orders WHERE {UNPAID_ORDERS_OF_CUSTOMER}
)
SELECT customer.unpaid_orders, customer.oldest_unpaid_expires_at, customer.order_id,
       products.id, products.price, products.stock, products.active, products.max_per_customer,
       CASE WHEN products.max_per_customer IS NOT NULL THEN {held_pairs_sql("products.id")} END AS held_pairs
FROM customer LEFT JOIN products ON products.id = ANY(CAST(%(product_ids)s AS integer[]))
"""


@dataclass(frozen=True)
class DecisionFacts:
    """The catalog of the order's products and the customer's holdings, as one statement saw them."""

    catalog: dict[int, ProductForSale]
    holdings: CustomerHoldings
    # A fresh order id when one was asked for.
    order_id: int | None


async def read_decision_facts(
    connection: AsyncConnection, customer_id: str, product_ids: list[int], *, allocate_order_id: bool
) -> DecisionFacts:
    """The facts of the catalog and of the customer now, without locking anything."""
    rows = (
        await connection.exec_driver_sql(
            _READ,
            {"customer_id": customer_id, "product_ids": product_ids, "allocate_order_id": allocate_order_id},
        )
    ).all()
    first = rows[0]  # the customer row is always there, joined to each product found
    products = [row for row in rows if row.id is not None]
    return DecisionFacts(
        catalog={
            row.id: ProductForSale(row.id, row.price, row.stock, row.active, row.max_per_customer) for row in products
        },
        holdings=CustomerHoldings(
            unpaid_orders=first.unpaid_orders,
            oldest_unpaid_expires_at=first.oldest_unpaid_expires_at,
            held_pairs={row.id: row.held_pairs for row in products if row.held_pairs is not None},
        ),
        order_id=first.order_id,
    )
