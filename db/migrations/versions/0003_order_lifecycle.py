"""order lifecycle: unpaid orders expire, a payment pays one order, products limit pairs per customer

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The contract's default payment deadline, for orders placed before deadlines existed.
EXISTING_ORDERS_TTL = "900 seconds"


def upgrade() -> None:
    op.add_column("products", sa.Column("max_per_customer", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_products_max_per_customer_positive"), "products", "max_per_customer IS NULL OR max_per_customer >= 1"
    )
    op.add_column("orders", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE orders SET expires_at = created_at + interval '{EXISTING_ORDERS_TTL}'")
    op.alter_column("orders", "expires_at", nullable=False)
    op.add_column("orders", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.create_check_constraint(
        op.f("ck_orders_status_known"), "orders", "status IN ('CREATED', 'CONFIRMED', 'CANCELLED', 'EXPIRED')"
    )
    op.create_unique_constraint(op.f("uq_orders_payment_id"), "orders", ["payment_id"])
    op.create_index(
        "ix_orders_due_expiry", "orders", ["expires_at"], postgresql_where=sa.text("status = 'CREATED'")
    )


def downgrade() -> None:
    op.drop_index("ix_orders_due_expiry", table_name="orders", postgresql_where=sa.text("status = 'CREATED'"))
    op.drop_constraint(op.f("uq_orders_payment_id"), "orders", type_="unique")
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.execute("UPDATE orders SET status = 'CANCELLED', cancelled_at = expired_at WHERE status = 'EXPIRED'")
    op.create_check_constraint(op.f("ck_orders_status_known"), "orders", "status IN ('CREATED', 'CONFIRMED', 'CANCELLED')")
    op.drop_column("orders", "expired_at")
    op.drop_column("orders", "expires_at")
    op.drop_constraint(op.f("ck_products_max_per_customer_positive"), "products", type_="check")
    op.drop_column("products", "max_per_customer")
