"""a customer's cancelled orders by when they were cancelled: the cancel cool-down check of every order probes it

Revision ID: 0011_order_speed_cancelled_index
Revises: 0010_relay_breaker_window
"""

from alembic import op

revision = "0011_order_speed_cancelled_index"
down_revision = "0010_relay_breaker_window"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every order's guarded write (and the decision's read) asks whether the customer cancelled one of its
    # products since the cool-down began (db/orders/purchase_limits.py, cancelled_since_sql). Without this
    # index that walked all the customer's orders (ix_orders_customer_id_created_at) and fetched each row to
    # read its status; with it, a customer who cancelled nothing lately costs one probe of a small index.
    # Partial: only cancelled orders are in it, so placing and paying orders never maintain it.
    op.create_index(
        "ix_orders_cancelled_by_customer",
        "orders",
        ["customer_id", "cancelled_at"],
        postgresql_where="status = 'CANCELLED'",
    )


def downgrade() -> None:
    op.drop_index("ix_orders_cancelled_by_customer", table_name="orders")
