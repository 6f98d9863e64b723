"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 23:11:27.419446
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('discount_type', sa.Text(), nullable=False),
    sa.Column('discount_value', sa.Integer(), nullable=False),
    sa.Column('max_discount', sa.Integer(), nullable=True),
    sa.Column('min_order_amount', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('usage_limit', sa.Integer(), nullable=True),
    sa.Column('used_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("discount_type IN ('FIXED', 'PERCENT')", name=op.f('ck_coupons_discount_type_known')),
    sa.CheckConstraint("discount_value > 0 AND (discount_type <> 'PERCENT' OR discount_value <= 100)", name=op.f('ck_coupons_discount_value_valid')),
    sa.CheckConstraint('max_discount IS NULL OR max_discount >= 0', name=op.f('ck_coupons_max_discount_not_negative')),
    sa.CheckConstraint('min_order_amount >= 0', name=op.f('ck_coupons_min_order_amount_not_negative')),
    sa.CheckConstraint('usage_limit IS NULL OR usage_limit >= 0', name=op.f('ck_coupons_usage_limit_not_negative')),
    sa.CheckConstraint('used_count >= 0 AND (usage_limit IS NULL OR used_count <= usage_limit)', name=op.f('ck_coupons_used_within_limit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    op.create_table('order_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('aggregate_type', sa.Text(), nullable=False),
    sa.Column('aggregate_id', sa.Text(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'PENDING'"), nullable=False),
    sa.Column('retry_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lease_token', sa.UUID(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by_workflow_id', sa.Text(), nullable=True),
    sa.Column('claimed_by_run_id', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('PENDING', 'PROCESSING', 'SENT', 'FAILED')", name=op.f('ck_order_events_status_known')),
    sa.CheckConstraint('sequence >= 1', name=op.f('ck_order_events_sequence_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events')),
    sa.UniqueConstraint('aggregate_type', 'aggregate_id', 'sequence', name='uq_order_events_aggregate_sequence'),
    sa.UniqueConstraint('event_id', name=op.f('uq_order_events_event_id'))
    )
    op.create_index('ix_order_events_due', 'order_events', ['next_attempt_at', 'id'], unique=False, postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index('ix_order_events_leases', 'order_events', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'PROCESSING'"))
    op.create_index('ix_order_events_status_id', 'order_events', ['status', 'id'], unique=False)
    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('brand', sa.Text(), nullable=False),
    sa.Column('size', sa.Text(), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('price >= 0', name=op.f('ck_products_price_not_negative')),
    sa.CheckConstraint('stock >= 0', name=op.f('ck_products_stock_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('sku', name=op.f('uq_products_sku'))
    )
    op.create_table('delivery_attempts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('attempt_number', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('workflow_id', sa.Text(), nullable=True),
    sa.Column('run_id', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('SENT', 'RETRY', 'FAILED', 'LEASE_EXPIRED', 'STALE')", name=op.f('ck_delivery_attempts_outcome_known')),
    sa.ForeignKeyConstraint(['event_id'], ['order_events.event_id'], name=op.f('fk_delivery_attempts_event_id_order_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    op.create_index('ix_delivery_attempts_event_id', 'delivery_attempts', ['event_id', 'attempt_number'], unique=False)
    op.create_table('orders',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=True),
    sa.Column('subtotal', sa.BigInteger(), nullable=False),
    sa.Column('discount', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('request_fingerprint', sa.Text(), nullable=True),
    sa.Column('payment_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('CREATED', 'CONFIRMED', 'CANCELLED')", name=op.f('ck_orders_status_known')),
    sa.CheckConstraint('subtotal >= 0 AND discount >= 0 AND discount <= subtotal', name=op.f('ck_orders_amounts_valid')),
    sa.CheckConstraint('total = subtotal - discount', name=op.f('ck_orders_total_is_subtotal_minus_discount')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_orders_coupon_id_coupons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_orders_idempotency_key'))
    )
    op.create_index('ix_orders_customer_id_created_at', 'orders', ['customer_id', 'created_at'], unique=False)
    op.create_table('order_items',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=False),
    sa.Column('line_total', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('line_total = unit_price::bigint * quantity', name=op.f('ck_order_items_line_total_consistent')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_items_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_items_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_items_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_items')),
    sa.UniqueConstraint('order_id', 'product_id', name='uq_order_items_order_id_product_id')
    )


def downgrade() -> None:
    op.drop_table('order_items')
    op.drop_index('ix_orders_customer_id_created_at', table_name='orders')
    op.drop_table('orders')
    op.drop_index('ix_delivery_attempts_event_id', table_name='delivery_attempts')
    op.drop_table('delivery_attempts')
    op.drop_table('products')
    op.drop_index('ix_order_events_status_id', table_name='order_events')
    op.drop_index('ix_order_events_leases', table_name='order_events', postgresql_where=sa.text("status = 'PROCESSING'"))
    op.drop_index('ix_order_events_due', table_name='order_events', postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_table('order_events')
    op.drop_table('coupons')
