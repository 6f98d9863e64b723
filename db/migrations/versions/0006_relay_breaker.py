"""relay against any platform: a shared circuit breaker, HELD attempts, attempts findable by run

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OUTCOMES_BEFORE = "outcome IN ('SENT', 'RETRY', 'FAILED', 'LEASE_EXPIRED', 'STALE')"
OUTCOMES_AFTER = "outcome IN ('SENT', 'RETRY', 'FAILED', 'HELD', 'LEASE_EXPIRED', 'STALE')"


def upgrade() -> None:
    op.create_table(
        "relay_breakers",
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'CLOSED'"), nullable=False),
        sa.Column("failures_in_a_row", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_token", sa.UUID(), nullable=True),
        sa.Column("probe_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("state IN ('CLOSED', 'OPEN')", name=op.f("ck_relay_breakers_state_known")),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_relay_breakers")),
    )
    op.drop_constraint(op.f("ck_delivery_attempts_outcome_known"), "delivery_attempts", type_="check")
    op.create_check_constraint(op.f("ck_delivery_attempts_outcome_known"), "delivery_attempts", OUTCOMES_AFTER)
    op.create_index("ix_delivery_attempts_run_id", "delivery_attempts", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_run_id", table_name="delivery_attempts")
    # A HELD attempt was a retry that did not count against the event's budget.
    op.execute("UPDATE delivery_attempts SET outcome = 'RETRY' WHERE outcome = 'HELD'")
    op.drop_constraint(op.f("ck_delivery_attempts_outcome_known"), "delivery_attempts", type_="check")
    op.create_check_constraint(op.f("ck_delivery_attempts_outcome_known"), "delivery_attempts", OUTCOMES_BEFORE)
    op.drop_table("relay_breakers")
