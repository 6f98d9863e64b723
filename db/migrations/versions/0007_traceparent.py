"""one trace from order to delivery: the W3C traceparent of the span that wrote each outbox event

Revision ID: 0007_traceparent
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_traceparent"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("order_events", sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("order_events", "traceparent")
