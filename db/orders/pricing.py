"""Pricing: order lines priced from the catalog, and the discount a coupon gives. Pure functions."""

from dataclasses import dataclass
from datetime import datetime

from db.orders.errors import (
    CouponExhausted,
    CouponMinAmountNotMet,
    CouponNotActive,
    InsufficientStock,
    ProductNotFound,
    ProductUnavailable,
)


@dataclass(frozen=True)
class OrderLine:
    """What the client asks for: a product and how many."""

    product_id: int
    quantity: int


@dataclass(frozen=True)
class ProductForSale:
    """The catalog facts a line is checked and priced against."""

    id: int
    price: int
    # None when not read: the order is decided as if there were enough, and its write checks the stock.
    stock: int | None
    active: bool
    # Pairs one customer may hold across unpaid and paid orders; None: no limit.
    max_per_customer: int | None = None
    # The version of the terms above (products.updated_at, in microseconds since the epoch): any change of
    # price, active or max_per_customer moves it. The write checks it, not the terms one by one.
    version: int | None = None


@dataclass(frozen=True)
class PricedLine:
    """A line with the unit price of the catalog at the time of the order."""

    product_id: int
    quantity: int
    unit_price: int

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class CouponTerms:
    """A coupon as stored, with how often it has been used."""

    id: int
    code: str
    discount_type: str
    discount_value: int
    max_discount: int | None
    min_order_amount: int
    starts_at: datetime | None
    expires_at: datetime | None
    usage_limit: int | None
    used_count: int
    active: bool
    # Changes whenever the terms change (a catalog upsert); uses do not change it.
    updated_at: datetime


def merge_lines(lines: list[OrderLine]) -> list[OrderLine]:
    """One line per product, quantities added, in product order."""
    quantities: dict[int, int] = {}  # a dict, not a Counter: this runs twice per order
    for line in lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    return [OrderLine(product_id, quantity) for product_id, quantity in sorted(quantities.items())]


def price_lines(lines: list[OrderLine], catalog: dict[int, ProductForSale]) -> list[PricedLine]:
    """Check every line against the catalog and price it; the first broken rule raises."""
    priced = []
    for line in lines:
        product = catalog.get(line.product_id)
        if product is None:
            raise ProductNotFound(f"product {line.product_id} does not exist")
        if not product.active:
            raise ProductUnavailable(f"product {line.product_id} is not for sale")
        if product.stock is not None and product.stock < line.quantity:
            raise InsufficientStock(
                f"product {line.product_id} has {product.stock} in stock, {line.quantity} requested"
            )
        priced.append(PricedLine(line.product_id, line.quantity, product.price))
    return priced


def coupon_discount(coupon: CouponTerms, subtotal: int, now: datetime) -> int:
    """The discount `coupon` gives on `subtotal` at `now`, in won; raises when it cannot be used."""
    if not coupon.active:
        raise CouponNotActive(f"coupon {coupon.code} is disabled")
    if coupon.starts_at is not None and now < coupon.starts_at:
        raise CouponNotActive(f"coupon {coupon.code} is valid from {coupon.starts_at.isoformat()}")
    if coupon.expires_at is not None and now >= coupon.expires_at:
        raise CouponNotActive(f"coupon {coupon.code} expired at {coupon.expires_at.isoformat()}")
    if coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit:
        raise CouponExhausted(f"coupon {coupon.code} has been used {coupon.used_count} of {coupon.usage_limit} times")
    if subtotal < coupon.min_order_amount:
        raise CouponMinAmountNotMet(
            f"coupon {coupon.code} needs an order of at least {coupon.min_order_amount} KRW, this one is {subtotal}"
        )
    if coupon.discount_type == "PERCENT":
        # Integer arithmetic: rounds down to the won, never up.
        discount = subtotal * coupon.discount_value // 100
    else:
        discount = coupon.discount_value
    if coupon.max_discount is not None:
        discount = min(discount, coupon.max_discount)
    return min(discount, subtotal)
