"""event redrives: every operator redrive of a FAILED event is recorded

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_redrives",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("redriven_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("retry_count_before", sa.Integer(), nullable=False),
        sa.Column("last_error_before", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["order_events.event_id"], name=op.f("fk_event_redrives_event_id_order_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_redrives")),
    )
    op.create_index("ix_event_redrives_event_id", "event_redrives", ["event_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_redrives_event_id", table_name="event_redrives")
    op.drop_table("event_redrives")
