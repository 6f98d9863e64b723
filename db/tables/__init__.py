"""Table definitions (SQLAlchemy Core), one module per part of the data model."""

from db.tables.catalog import coupons, products
from db.tables.metadata import metadata
from db.tables.orders import order_items, orders
from db.tables.outbox import (
    delivery_attempts,
    destinations,
    event_deliveries,
    operator_actions,
    order_events,
    relay_breakers,
)
from db.tables.replays import idempotency_keys, payment_webhooks

__all__ = [
    "metadata",
    "products",
    "coupons",
    "orders",
    "order_items",
    "order_events",
    "destinations",
    "event_deliveries",
    "delivery_attempts",
    "operator_actions",
    "idempotency_keys",
    "payment_webhooks",
    "relay_breakers",
]
