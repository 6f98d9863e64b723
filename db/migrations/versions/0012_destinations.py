"""several destinations: the event is written once, each destination's delivery of it has its own state

Revision ID: 0012_destinations
Revises: 0011_order_speed_cancelled_index

Existing events keep their state as deliveries to `platform` (today's one destination); their attempts
and operator actions are `platform`'s. The breakers were keyed by the platform's URL: they are keyed by
destination now and start CLOSED (a breaker's state is worth seconds; the first answers rebuild it).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_destinations"
down_revision = "0011_order_speed_cancelled_index"
branch_labels = None
depends_on = None

_STATE = (
    "status",
    "retry_count",
    "next_attempt_at",
    "lease_token",
    "lease_expires_at",
    "claimed_by_workflow_id",
    "claimed_by_run_id",
    "last_error",
    "sent_at",
    "not_before",
)

# Each new event gets one delivery per destination that takes its type, in the event's own transaction.
_FAN_OUT = """
CREATE FUNCTION order_events_to_destinations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_deliveries (id, destination, event_id, aggregate_type, aggregate_id, sequence, next_attempt_at)
    SELECT NEW.id, destination.name, NEW.event_id, NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.created_at
    FROM destinations AS destination
    WHERE destination.removed_at IS NULL
      AND (destination.event_types IS NULL OR NEW.event_type = ANY(destination.event_types));
    RETURN NULL;
END
$$;
CREATE TRIGGER order_events_to_destinations AFTER INSERT ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_to_destinations();
"""


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_destinations")),
    )
    op.execute("INSERT INTO destinations (name) VALUES ('platform')")
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("aggregate_type", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'PENDING'"), nullable=False),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_token", sa.UUID(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by_workflow_id", sa.Text(), nullable=True),
        sa.Column("claimed_by_run_id", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'PROCESSING', 'SENT', 'FAILED')", name=op.f("ck_event_deliveries_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["id"], ["order_events.id"], name=op.f("fk_event_deliveries_id_order_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["destination"], ["destinations.name"], name=op.f("fk_event_deliveries_destination_destinations")
        ),
        sa.PrimaryKeyConstraint("id", "destination", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint("destination", "aggregate_type", "aggregate_id", "sequence", name="uq_event_deliveries_order"),
    )
    op.execute(
        f"""
        INSERT INTO event_deliveries (id, destination, event_id, aggregate_type, aggregate_id, sequence, {", ".join(_STATE)})
        SELECT id, 'platform', event_id, aggregate_type, aggregate_id, sequence, {", ".join(_STATE)} FROM order_events
        """
    )
    op.create_index("ix_event_deliveries_event_id", "event_deliveries", ["event_id"])
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["destination", "next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_event_deliveries_leases",
        "event_deliveries",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_index("ix_event_deliveries_status_id", "event_deliveries", ["destination", "status", "id"])
    op.execute(_FAN_OUT)

    for table in ("delivery_attempts", "operator_actions"):
        op.add_column(table, sa.Column("destination", sa.Text(), server_default="platform", nullable=False))
        op.alter_column(table, "destination", server_default=None)
    op.drop_index("ix_delivery_attempts_event_id", table_name="delivery_attempts")
    op.create_index(
        "ix_delivery_attempts_event_id", "delivery_attempts", ["event_id", "destination", "attempt_number"]
    )
    op.execute("DELETE FROM relay_breakers")
    op.alter_column("relay_breakers", "platform", new_column_name="destination")

    for index in ("ix_order_events_due", "ix_order_events_leases", "ix_order_events_status_id", "ix_order_events_retention"):
        op.drop_index(index, table_name="order_events")
    for column in _STATE:
        op.drop_column("order_events", column)
    op.create_index("ix_order_events_created_at", "order_events", ["created_at"])


def downgrade() -> None:
    """Back to one platform: `platform`'s deliveries become the events' state (other destinations' are lost)."""
    op.drop_index("ix_order_events_created_at", table_name="order_events")
    op.add_column("order_events", sa.Column("status", sa.Text(), server_default=sa.text("'PENDING'"), nullable=False))
    op.add_column("order_events", sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "order_events",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.add_column("order_events", sa.Column("lease_token", sa.UUID(), nullable=True))
    op.add_column("order_events", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("order_events", sa.Column("claimed_by_workflow_id", sa.Text(), nullable=True))
    op.add_column("order_events", sa.Column("claimed_by_run_id", sa.Text(), nullable=True))
    op.add_column("order_events", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("order_events", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("order_events", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_order_events_status_known"), "order_events", "status IN ('PENDING', 'PROCESSING', 'SENT', 'FAILED')"
    )
    op.execute(
        f"""
        UPDATE order_events AS event SET ({", ".join(_STATE)}) = ({", ".join("delivery." + column for column in _STATE)})
        FROM event_deliveries AS delivery
        WHERE delivery.id = event.id AND delivery.destination = 'platform'
        """
    )
    op.create_index(
        "ix_order_events_due", "order_events", ["next_attempt_at", "id"], postgresql_where=sa.text("status = 'PENDING'")
    )
    op.create_index(
        "ix_order_events_leases", "order_events", ["lease_expires_at"], postgresql_where=sa.text("status = 'PROCESSING'")
    )
    op.create_index("ix_order_events_status_id", "order_events", ["status", "id"])
    op.create_index("ix_order_events_retention", "order_events", ["sent_at"], postgresql_where=sa.text("status = 'SENT'"))

    op.alter_column("relay_breakers", "destination", new_column_name="platform")
    op.execute("DELETE FROM relay_breakers")
    op.drop_index("ix_delivery_attempts_event_id", table_name="delivery_attempts")
    op.execute("DELETE FROM delivery_attempts WHERE destination <> 'platform'")
    op.execute("DELETE FROM operator_actions WHERE destination <> 'platform'")
    for table in ("delivery_attempts", "operator_actions"):
        op.drop_column(table, "destination")
    op.create_index("ix_delivery_attempts_event_id", "delivery_attempts", ["event_id", "attempt_number"])

    op.execute("DROP TRIGGER order_events_to_destinations ON order_events")
    op.execute("DROP FUNCTION order_events_to_destinations()")
    op.drop_table("event_deliveries")
    op.drop_table("destinations")
