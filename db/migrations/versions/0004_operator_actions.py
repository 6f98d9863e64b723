"""lifecycle: one audit of operator actions (redrive, retry-now, replay, discard); an index for retention

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIONS = "action IN ('REDRIVE', 'RETRY_NOW', 'REPLAY', 'DISCARD')"


def upgrade() -> None:
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("status_before", sa.Text(), nullable=False),
        sa.Column("retry_count_before", sa.Integer(), nullable=False),
        sa.Column("last_error_before", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(ACTIONS, name=op.f("ck_operator_actions_action_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    op.create_index("ix_operator_actions_event_id", "operator_actions", ["event_id", "id"], unique=False)
    # The redrives recorded so far become the first operator actions.
    op.execute(
        """
        INSERT INTO operator_actions (event_id, action, requested_at, requested_by, status_before,
                                      retry_count_before, last_error_before)
        SELECT event_id, 'REDRIVE', redriven_at, requested_by, 'FAILED', retry_count_before, last_error_before
        FROM event_redrives ORDER BY id
        """
    )
    op.drop_index("ix_event_redrives_event_id", table_name="event_redrives")
    op.drop_table("event_redrives")
    op.create_index(
        "ix_order_events_retention", "order_events", ["sent_at"], postgresql_where=sa.text("status = 'SENT'")
    )


def downgrade() -> None:
    op.drop_index("ix_order_events_retention", table_name="order_events", postgresql_where=sa.text("status = 'SENT'"))
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
    # Only redrives of events that still exist fit the old table; the other actions have no place there.
    op.execute(
        """
        INSERT INTO event_redrives (event_id, redriven_at, requested_by, retry_count_before, last_error_before)
        SELECT action.event_id, action.requested_at, action.requested_by, action.retry_count_before,
               action.last_error_before
        FROM operator_actions AS action
        WHERE action.action = 'REDRIVE' AND EXISTS (SELECT FROM order_events WHERE event_id = action.event_id)
        ORDER BY action.id
        """
    )
    op.drop_index("ix_operator_actions_event_id", table_name="operator_actions")
    op.drop_table("operator_actions")
