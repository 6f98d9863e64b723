"""What placing an order is decided from: the products, what the customer holds, the coupon; in one statement.

Facts are read (`read_decision_facts`) or assumed (`assumed_facts`): the catalog as this process
last saw it, the customer's holdings as its last write of their order left them, or nothing
held; the placement's guarded write checks them all (db/orders/placement.py).
"""

from dataclasses import dataclass, fields
from datetime import datetime

from db.orders.driver import DriverConnection
from db.orders.pricing import CouponTerms, OrderLine, ProductForSale
from db.orders.purchase_limits import (
    UNPAID_ORDER_IDS,
    UNPAID_ORDERS_OF_CUSTOMER,
    UNPAID_PAIRS_OF_CUSTOMER,
    CustomerHoldings,
    cancelled_since_sql,
    held_pairs_sql,
)

_COUPON_FIELDS = [field.name for field in fields(CouponTerms)]

# A product's terms version (ProductForSale.version): its updated_at in microseconds since the epoch, exactly.
TERMS_VERSION = "CAST(extract(epoch FROM products.updated_at) * 1000000 AS bigint)"


# One row per product found (one row without a product when none is), each with the customer's
# facts and the coupon's terms.
_READ = f"""
SELECT customer.unpaid_order_ids, customer.oldest_unpaid_expires_at, {UNPAID_PAIRS_OF_CUSTOMER} AS unpaid_pairs,
       {", ".join(f"coupons.{name}" for name in _COUPON_FIELDS)},
       products.id, products.price, products.stock, products.active, products.max_per_customer,
       {TERMS_VERSION} AS version,
       CASE WHEN products.max_per_customer IS NOT NULL THEN {held_pairs_sql("products.id")} END AS held_pairs,
       {cancelled_since_sql("products.id")} AS cooling
FROM (SELECT {UNPAID_ORDER_IDS} AS unpaid_order_ids, min(orders.expires_at) AS oldest_unpaid_expires_at
      FROM orders WHERE {UNPAID_ORDERS_OF_CUSTOMER}) AS customer
LEFT JOIN coupons ON coupons.id = CAST(%(coupon_id)s AS integer)
LEFT JOIN products ON products.id = ANY(CAST(%(product_ids)s AS integer[]))
"""


@dataclass(frozen=True)
class DecisionFacts:
    """The catalog of the order's products, the customer's holdings and the coupon, as one statement saw them.

    `assumed` facts were not read: they are what this process expects, and a refusal needs a read.
    """

    catalog: dict[int, ProductForSale]
    holdings: CustomerHoldings
    coupon: CouponTerms | None
    assumed: bool = False


def assumed_facts(catalog: dict[int, ProductForSale], holdings: CustomerHoldings | None = None) -> DecisionFacts:
    """Facts for products as last seen (stock unknown), bought by a customer holding `holdings` (default: nothing)."""
    known = holdings or CustomerHoldings((), None, {})
    held = {
        product.id: known.held_pairs.get(product.id, 0)
        for product in catalog.values()
        if product.max_per_customer is not None
    }
    return DecisionFacts(
        catalog,
        CustomerHoldings(known.unpaid_order_ids, known.oldest_unpaid_expires_at, held, known.unpaid_pairs),
        None,
        assumed=True,
    )


async def read_decision_facts(
    driver: DriverConnection,
    customer_id: str,
    lines: list[OrderLine],
    coupon_id: int | None,
    cooldown_since: datetime,
) -> DecisionFacts:
    """The facts of the catalog, of the customer and of the coupon now, without locking anything.

    A product counts as cooling down when the customer cancelled an order of it after `cooldown_since`.
    """
    rows = await driver.execute(
        _READ,
        {
            "customer_id": customer_id,
            "product_ids": [line.product_id for line in lines],
            "coupon_id": coupon_id,
            "cooldown_since": cooldown_since,
        },
    )
    customer = rows[0]
    coupon = customer[3 : 3 + len(_COUPON_FIELDS)]
    products = [row[3 + len(_COUPON_FIELDS) :] for row in rows]
    products = [product for product in products if product[0] is not None]
    return DecisionFacts(
        catalog={
            id_: ProductForSale(id_, price, stock, active, limit, version)
            for id_, price, stock, active, limit, version, _, _ in products
        },
        holdings=CustomerHoldings(
            unpaid_order_ids=tuple(customer[0]),
            oldest_unpaid_expires_at=customer[1],
            held_pairs={product[0]: product[6] for product in products if product[6] is not None},
            unpaid_pairs=customer[2],
            cooling=frozenset(product[0] for product in products if product[7]),
        ),
        coupon=None if coupon[0] is None else CouponTerms(*coupon),
    )
