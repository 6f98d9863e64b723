"""A per-customer rate of requests (CUSTOMER_RATE_LIMIT_PER_SECOND, with a burst): beyond it, 429 RATE_LIMITED.

A token bucket per customer in this process's memory, taken by every customer request after the
customer's token is checked and before any database work (api/customer_auth.py, customer_of_request),
so a buyer who sends faster than a person can (a script during a drop) is answered at the door and
costs the database nothing. Two floats per customer; the customers seen least recently are dropped
beyond `max_customers` (a dropped customer starts with a full bucket again, which only ever errs on
the side of the buyer). Behind several API processes each has its own buckets: the rate a customer
gets is at most the processes times the setting.
"""

import math
import time

from api.problems import ApiProblem

MAX_CUSTOMERS = 100_000


class CustomerRateLimit:
    """Token buckets of `per_second` tokens a second, at most `burst`, one per customer."""

    def __init__(self, per_second: float, burst: int, max_customers: int = MAX_CUSTOMERS) -> None:
        self.per_second, self.burst, self.max_customers = per_second, burst, max_customers
        # customer -> (tokens, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    @classmethod
    def from_settings(cls, settings) -> "CustomerRateLimit":
        return cls(settings.customer_rate_limit_per_second, settings.customer_rate_limit_burst)

    def check(self, customer: str) -> None:
        """Take one token of `customer`'s bucket, or raise 429 RATE_LIMITED with the seconds until one is free."""
        now = time.monotonic()
        known = self._buckets.pop(customer, None)
        tokens = self.burst if known is None else min(self.burst, known[0] + (now - known[1]) * self.per_second)
        if len(self._buckets) >= self.max_customers:
            del self._buckets[next(iter(self._buckets))]
        if tokens < 1:
            self._buckets[customer] = (tokens, now)
            retry_after = max(1, math.ceil((1 - tokens) / self.per_second))
            raise ApiProblem(
                429,
                "RATE_LIMITED",
                f"more than {self.per_second:g} requests a second (a burst of {self.burst});"
                f" try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        self._buckets[customer] = (tokens - 1, now)
