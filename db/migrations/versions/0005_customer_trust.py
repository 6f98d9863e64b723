"""orders: idempotency keys per customer in their own table, processed payment webhooks, event sequence on the order

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The contract's default IDEMPOTENCY_KEY_TTL_HOURS, for keys used before keys expired.
EXISTING_KEYS_TTL = "24 hours"


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False)
    op.create_table(
        "payment_webhooks",
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_payment_webhooks")),
    )
    op.create_index("ix_payment_webhooks_processed_at", "payment_webhooks", ["processed_at"], unique=False)

    op.create_index(
        "ix_orders_unpaid_by_customer",
        "orders",
        ["customer_id", "expires_at"],
        postgresql_where=sa.text("status = 'CREATED'"),
    )
    op.add_column("orders", sa.Column("last_event_sequence", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_check_constraint(
        op.f("ck_orders_last_event_sequence_not_negative"), "orders", "last_event_sequence >= 0"
    )
    op.execute(
        """
        UPDATE orders SET last_event_sequence = events.last
        FROM (SELECT aggregate_id, max(sequence) AS last FROM order_events WHERE aggregate_type = 'order'
              GROUP BY aggregate_id) AS events
        WHERE events.aggregate_id = orders.id::text
        """
    )
    # Keys in use keep replaying their first response (the OrderCreated payload) for a day.
    op.execute(
        f"""
        INSERT INTO idempotency_keys (customer_id, key, request_fingerprint, order_id, response, created_at, expires_at)
        SELECT orders.customer_id, orders.idempotency_key, orders.request_fingerprint, orders.id, created.payload,
               orders.created_at, orders.created_at + interval '{EXISTING_KEYS_TTL}'
        FROM orders JOIN order_events AS created
          ON created.aggregate_type = 'order' AND created.aggregate_id = orders.id::text AND created.sequence = 1
        WHERE orders.idempotency_key IS NOT NULL
        """
    )
    op.drop_constraint(op.f("uq_orders_idempotency_key"), "orders", type_="unique")
    op.drop_column("orders", "idempotency_key")
    op.drop_column("orders", "request_fingerprint")


def downgrade() -> None:
    op.add_column("orders", sa.Column("request_fingerprint", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("idempotency_key", sa.Text(), nullable=True))
    # Keys were global before: where two customers used the same key, the newest order keeps it.
    op.execute(
        """
        UPDATE orders SET idempotency_key = keys.key, request_fingerprint = keys.request_fingerprint
        FROM (SELECT DISTINCT ON (key) key, request_fingerprint, order_id FROM idempotency_keys
              ORDER BY key, created_at DESC) AS keys
        WHERE keys.order_id = orders.id
        """
    )
    op.create_unique_constraint(op.f("uq_orders_idempotency_key"), "orders", ["idempotency_key"])
    op.drop_constraint(op.f("ck_orders_last_event_sequence_not_negative"), "orders", type_="check")
    op.drop_index("ix_orders_unpaid_by_customer", table_name="orders", postgresql_where=sa.text("status = 'CREATED'"))
    op.drop_column("orders", "last_event_sequence")
    op.drop_index("ix_payment_webhooks_processed_at", table_name="payment_webhooks")
    op.drop_table("payment_webhooks")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
