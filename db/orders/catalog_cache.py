"""What this process last knew of the products it sells: the assumption an order is decided from before any read.

Prices, active flags and max_per_customer, each as the latest read of this process saw them, with
the version (`updated_at`) they had. Never a fact an order is written on: the placement's guarded
write checks, under the products' row locks, that each product's version is still the one the
decision used (and that the stock suffices), and when one differs it writes nothing; the placement
then reads the facts as they are, which replace the stale ones here, and decides again. A stale
entry therefore costs a read and a second write of one order, never a wrong order. Entries older than
CATALOG_TTL_SECONDS are read again (products nobody orders do not linger), and the cache is bounded.

The stock a read saw is kept apart, for one use only: refusing at once an order that asks for more
than is left (a sold-out drop), without a connection, a lock or a statement. Stock only goes down
by orders, which a refusal need not see; whenever it rises (a cancel, an expiry, a restock, any
UPDATE) a trigger notifies every API process (db/orders/stock_returns.py), which forgets the stock
it knew. So the memory is trusted only while this process listens, and never longer than
`stock_seconds` after the read that saw it (the bound should a notification be missed); a read that
started before a notification arrived does not overwrite what the notification taught.
"""

import time
from dataclasses import dataclass, replace

from db.orders.errors import InsufficientStock, OrderRejected
from db.orders.pricing import OrderLine, ProductForSale, price_lines

CATALOG_TTL_SECONDS = 60.0
CATALOG_MAX_PRODUCTS = 100_000
# How long a stock seen by a read may refuse orders, at most (SOLD_OUT_MEMORY_SECONDS).
STOCK_MEMORY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class _Known:
    product: ProductForSale
    noted_at: float


class CatalogCache:
    """The products as this process last saw them (stock apart, for refusals), for one database."""

    def __init__(
        self,
        ttl_seconds: float = CATALOG_TTL_SECONDS,
        max_products: int = CATALOG_MAX_PRODUCTS,
        stock_seconds: float = STOCK_MEMORY_SECONDS,
    ) -> None:
        self.ttl_seconds, self.max_products, self.stock_seconds = ttl_seconds, max_products, stock_seconds
        self._known: dict[int, _Known] = {}
        # product id -> (stock, when the read that saw it started)
        self._stock: dict[int, tuple[int, float]] = {}
        # product id -> when stock of it last came back (a notification); None: everything, at `_all_returned_at`.
        self._returned_at: dict[int, float] = {}
        self._all_returned_at = 0.0
        # Set while the notifications of returned stock are heard (db/orders/stock_returns.py).
        self.listening = False

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

    def note(self, catalog: dict[int, ProductForSale], read_started_at: float | None = None) -> None:
        """Remember the products as a read (started at `read_started_at`, monotonic) saw them."""
        now = time.monotonic()
        for product in catalog.values():
            if len(self._known) >= self.max_products and product.id not in self._known:
                evicted = next(iter(self._known))
                del self._known[evicted]
                self._stock.pop(evicted, None)
            self._known[product.id] = _Known(replace(product, stock=None), now)
            if product.stock is not None and read_started_at is not None:
                self._note_stock(product.id, product.stock, read_started_at)

    def _note_stock(self, product_id: int, stock: int, read_started_at: float) -> None:
        returned_at = max(self._all_returned_at, self._returned_at.get(product_id, 0.0))
        if read_started_at > returned_at:
            self._stock[product_id] = (stock, read_started_at)

    def refusal(self, lines: list[OrderLine]) -> InsufficientStock | None:
        """The INSUFFICIENT_STOCK a read would give these (merged) lines now, if this process knows it; else None.

        Only when every product is known, so that no rule checked before the stock (an unknown or
        inactive product on an earlier line) would have answered otherwise.
        """
        if not self.listening or not self._stock:
            return None
        oldest = time.monotonic() - self.stock_seconds
        # Most orders find no line short of the stock seen: answered without building a catalog (every order runs this).
        if not any(
            (seen := self._stock.get(line.product_id)) is not None and seen[1] >= oldest and seen[0] < line.quantity
            for line in lines
        ):
            return None
        catalog = self.products([line.product_id for line in lines])
        if catalog is None:
            return None
        for line in lines:
            seen = self._stock.get(line.product_id)
            if seen is not None and seen[1] >= oldest:
                catalog[line.product_id] = replace(catalog[line.product_id], stock=seen[0])
        try:
            price_lines(lines, catalog)
        except InsufficientStock as refused:
            return refused
        except OrderRejected:
            return None
        return None

    def stock_returned(self, product_ids: list[int] | None) -> None:
        """Forget the stock seen of `product_ids` (None: of every product): pairs came back."""
        now = time.monotonic()
        if product_ids is None:
            self._stock.clear()
            self._returned_at.clear()
            self._all_returned_at = now
            return
        for product_id in product_ids:
            self._stock.pop(product_id, None)
            self._returned_at[product_id] = now
        if len(self._returned_at) > self.max_products:
            self._returned_at.clear()
            self._all_returned_at = now
