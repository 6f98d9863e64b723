"""What each customer holds as this process's last write of their order left it: the assumption for their next order.

A placement that wrote an order knows, exactly, what its customer held then (the write checked it
under the customer's lock) and what they hold now: one more unpaid order and the order's pairs.
The customer's next order through this process starts from that instead of from "nothing held",
so a customer's second and third orders are written in one round trip too. It is only ever an
assumption: a payment, a cancellation, an expiry or an order through another process makes it
stale, and the write, which checks the customer's facts under their lock, then writes nothing; the
placement reads the facts as they are and writes again (one retry, never a wrong order). Entries
are kept HOLDINGS_TTL_SECONDS and bounded in number.
"""

import time

from db.orders.purchase_limits import CustomerHoldings

HOLDINGS_TTL_SECONDS = 60.0
HOLDINGS_MAX_CUSTOMERS = 100_000


class HoldingsCache:
    """Customers' holdings as this process's last write of their order left them."""

    def __init__(self, ttl_seconds: float = HOLDINGS_TTL_SECONDS, max_customers: int = HOLDINGS_MAX_CUSTOMERS) -> None:
        self.ttl_seconds, self.max_customers = ttl_seconds, max_customers
        self._known: dict[str, tuple[CustomerHoldings, float]] = {}

    def of(self, customer_id: str) -> CustomerHoldings | None:
        """What the customer holds as last seen here, or None (unknown, or seen too long ago)."""
        known = self._known.get(customer_id)
        if known is None or known[1] < time.monotonic() - self.ttl_seconds:
            return None
        return known[0]

    def note(self, customer_id: str, holdings: CustomerHoldings) -> None:
        """Remember what the customer holds now."""
        if len(self._known) >= self.max_customers and customer_id not in self._known:
            del self._known[next(iter(self._known))]
        self._known.pop(customer_id, None)
        self._known[customer_id] = (holdings, time.monotonic())
