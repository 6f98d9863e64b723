"""Table definitions (SQLAlchemy Core), one module per part of the data model."""

from db.tables.catalog import coupons, products
from db.tables.metadata import metadata
from db.tables.orders import order_items, orders
from db.tables.outbox import delivery_attempts, event_redrives, order_events, relay_breakers

__all__ = [
    "metadata",
    "products",
    "coupons",
    "orders",
    "order_items",
    "order_events",
    "delivery_attempts",
    "event_redrives",
    "relay_breakers",
]
