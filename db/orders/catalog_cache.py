"""What this process last knew of the products it sells: the assumption an order is decided from before any read.

Prices, active flags and max_per_customer, each as the latest read of this process saw them. Never
a fact an order is written on: the placement's guarded write re-checks every one of them (and the
stock, which is not kept) under the products' row locks, and when one differs it writes nothing;
the placement then reads the facts as they are, which replace the stale ones here. A stale entry
therefore costs a read and a second write of one order, never a wrong order. Entries older than
CATALOG_TTL_SECONDS are read again (products nobody orders do not linger), and the cache is bounded.
"""

import time
from dataclasses import dataclass

from db.orders.pricing import ProductForSale

CATALOG_TTL_SECONDS = 60.0
CATALOG_MAX_PRODUCTS = 100_000


@dataclass(frozen=True, slots=True)
class _Known:
    product: ProductForSale
    noted_at: float


class CatalogCache:
    """The products as this process last saw them (without their stock), for one database."""

    def __init__(self, ttl_seconds: float = CATALOG_TTL_SECONDS, max_products: int = CATALOG_MAX_PRODUCTS) -> None:
        self.ttl_seconds, self.max_products = ttl_seconds, max_products
        self._known: dict[int, _Known] = {}

    def products(self, product_ids: list[int]) -> dict[int, ProductForSale] | None:
        """The named products as last seen (stock unknown), or None unless every one of them is known and recent."""
        oldest = time.monotonic() - self.ttl_seconds
        found = {}
        for product_id in product_ids:
            known = self._known.get(product_id)
            if known is None or known.noted_at < oldest:
                return None
            found[product_id] = known.product
        return found

    def note(self, catalog: dict[int, ProductForSale]) -> None:
        """Remember the products as a read of the facts saw them."""
        now = time.monotonic()
        for product in catalog.values():
            if len(self._known) >= self.max_products and product.id not in self._known:
                del self._known[next(iter(self._known))]
            self._known[product.id] = _Known(
                ProductForSale(product.id, product.price, None, product.active, product.max_per_customer), now
            )
