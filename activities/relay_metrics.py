"""What the relay's activities measure (Prometheus, exported by the worker on WORKER_METRICS_PORT)."""

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "sneaker_orders_relay_attempts_total",
    "Delivery attempts by destination, how they ended (SENT, RETRY, FAILED, HELD, STALE) and HTTP status class",
    ["destination", "outcome", "status_class"],
)
COMMIT_TO_ACK = Histogram(
    "sneaker_orders_relay_commit_to_ack_seconds",
    "From the event's commit (occurred_at) to the destination's acknowledgement of it",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3, 6, 15, 30, 60, 300),
)
IN_FLIGHT = Gauge(
    "sneaker_orders_relay_deliveries_in_flight", "Requests to the destination awaiting their answer", ["destination"]
)
CLAIMS_GIVEN_BACK = Counter(
    "sneaker_orders_relay_claims_given_back_total",
    "Claimed deliveries handed back unattempted (shutdown, pause)",
    ["destination"],
)
LEASES_EXPIRED = Counter(
    "sneaker_orders_relay_leases_expired_total",
    "Claims whose relay vanished: given back after their lease expired",
    ["destination"],
)
BREAKER_OPEN = Gauge(
    "sneaker_orders_relay_breaker_open",
    "1 while the destination's circuit breaker is open (deliveries held, probing), as this worker last saw it",
    ["destination"],
)


def status_class(http_status: int | None) -> str:
    """'2xx', '4xx', '5xx'..., or 'none' when there was no answer."""
    return "none" if http_status is None else f"{http_status // 100}xx"
