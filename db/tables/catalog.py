"""The catalog: products (one row per model and size) and coupons."""

from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, Integer, Table, Text, func, text

from db.tables.metadata import metadata

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("brand", Text, nullable=False),
    Column("size", Text, nullable=False),
    Column("price", Integer, nullable=False),
    Column("stock", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    # Pairs of this product one customer may hold across CREATED and CONFIRMED orders; null: no limit.
    Column("max_per_customer", Integer),
    # When the catalog entry last changed (catalog upserts), not when its stock moved.
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("price >= 0", name="price_not_negative"),
    CheckConstraint("max_per_customer IS NULL OR max_per_customer >= 1", name="max_per_customer_positive"),
    # The last line of defence against overselling: no write can take stock below zero.
    CheckConstraint("stock >= 0", name="stock_not_negative"),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("discount_type", Text, nullable=False),
    Column("discount_value", Integer, nullable=False),
    Column("max_discount", Integer),
    Column("min_order_amount", Integer, nullable=False, server_default=text("0")),
    Column("starts_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("usage_limit", Integer),
    Column("used_count", Integer, nullable=False, server_default=text("0")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    # When the terms last changed (catalog upserts), not when the coupon was last used: orders
    # compare it to tell whether the terms they priced with still hold.
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("discount_type IN ('FIXED', 'PERCENT')", name="discount_type_known"),
    CheckConstraint(
        "discount_value > 0 AND (discount_type <> 'PERCENT' OR discount_value <= 100)", name="discount_value_valid"
    ),
    CheckConstraint("max_discount IS NULL OR max_discount >= 0", name="max_discount_not_negative"),
    CheckConstraint("min_order_amount >= 0", name="min_order_amount_not_negative"),
    CheckConstraint("usage_limit IS NULL OR usage_limit >= 0", name="usage_limit_not_negative"),
    # No coupon is ever used more often than its limit, whatever the concurrency.
    CheckConstraint("used_count >= 0 AND (usage_limit IS NULL OR used_count <= usage_limit)", name="used_within_limit"),
)
