"""Orders and their lines."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from db.statuses import ORDER_STATUSES, sql_in
from db.tables.metadata import metadata

orders = Table(
    "orders",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("status", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("coupon_id", Integer, ForeignKey("coupons.id")),
    Column("subtotal", BigInteger, nullable=False),
    Column("discount", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    # A payment pays at most one order.
    Column("payment_id", Text, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # An unpaid (CREATED) order is EXPIRED once this has passed: stock and coupon use go back.
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
    # The sequence of the order's latest event: the next event takes the next number, even after
    # retention deleted the old ones.
    Column("last_event_sequence", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(sql_in("status", ORDER_STATUSES), name="status_known"),
    CheckConstraint("subtotal >= 0 AND discount >= 0 AND discount <= subtotal", name="amounts_valid"),
    CheckConstraint("total = subtotal - discount", name="total_is_subtotal_minus_discount"),
    CheckConstraint("last_event_sequence >= 0", name="last_event_sequence_not_negative"),
    Index("ix_orders_customer_id_created_at", "customer_id", "created_at"),
    # What a placement counts under the customer's lock: the customer's unpaid orders (a handful at most).
    Index("ix_orders_unpaid_by_customer", "customer_id", "expires_at", postgresql_where=text("status = 'CREATED'")),
    # What the expiry schedule scans: unpaid orders by deadline.
    Index("ix_orders_due_expiry", "expires_at", postgresql_where=text("status = 'CREATED'")),
    # What every placement probes for the cancel cool-down: the customer's recently cancelled orders.
    Index(
        "ix_orders_cancelled_by_customer",
        "customer_id",
        "cancelled_at",
        postgresql_where=text("status = 'CANCELLED'"),
    ),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Integer, nullable=False),
    Column("line_total", BigInteger, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("line_total = unit_price::bigint * quantity", name="line_total_consistent"),
    UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
)
