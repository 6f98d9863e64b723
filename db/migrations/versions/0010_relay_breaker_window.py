"""a breaker that judges the platform: a sliding window of answers, probes after Retry-After, a bounded drain

Revision ID: 0010_relay_breaker_window
Revises: 0009_drop_stock_returned_notify
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_relay_breaker_window"
down_revision = "0009_drop_stock_returned_notify"
branch_labels = None
depends_on = None

_COUNTS = ("window_answers", "window_failures", "previous_answers", "previous_failures")
_TIMES = ("window_started_at", "accepted_sent_at", "retry_after_until", "drain_before")


def upgrade() -> None:
    op.add_column("order_events", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    for name in _TIMES:
        op.add_column("relay_breakers", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    for name in _COUNTS:
        op.add_column("relay_breakers", sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "relay_breakers", sa.Column("open_seconds_total", sa.Float(), server_default=sa.text("0"), nullable=False)
    )


def downgrade() -> None:
    for name in ("open_seconds_total", *_COUNTS, *_TIMES):
        op.drop_column("relay_breakers", name)
    op.drop_column("order_events", "not_before")
