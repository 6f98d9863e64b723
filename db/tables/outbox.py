"""The transactional outbox (`order_events`) and the log of every delivery attempt."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from db.statuses import BREAKER_STATES, EVENT_STATUSES, LOGGED_OUTCOMES, OPERATOR_ACTIONS, sql_in
from db.tables.metadata import metadata

order_events = Table(
    "order_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("aggregate_type", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    # Counts the events of one aggregate from 1 with no gaps; the platform uses it to detect gaps.
    Column("sequence", Integer, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The W3C traceparent of the span that wrote the event (the API request's), when that process traced:
    # each delivery attempt's span is its child.
    Column("traceparent", Text),
    CheckConstraint("sequence >= 1", name="sequence_positive"),
    UniqueConstraint("aggregate_type", "aggregate_id", "sequence", name="uq_order_events_aggregate_sequence"),
    # What retention scans: the oldest events first.
    Index("ix_order_events_created_at", "created_at"),
)

# Where events go: one row per configured destination (DESTINATIONS_FILE, or `platform`), kept in step with
# the configuration by the worker. A trigger on `order_events` gives each event one delivery per destination
# that takes its type, in the event's own transaction: a destination added later gets the events written
# after it was added (and older ones only by `events replay --destination`). A destination taken out of the
# configuration is `removed_at`: it gets no new events, and what it had not received no longer holds
# retention back.
destinations = Table(
    "destinations",
    metadata,
    Column("name", Text, primary_key=True),
    # The event types it takes; NULL: every type.
    Column("event_types", ARRAY(Text)),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("removed_at", DateTime(timezone=True)),
)

# The delivery of one event to one destination: its own state, budget, lease and backoff. The event's
# identity (its row id, order and sequence) is copied here by the trigger so that the claim keeps each
# order's events in order per destination without reading `order_events`.
event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column("id", BigInteger, ForeignKey("order_events.id", ondelete="CASCADE"), primary_key=True),
    Column("destination", Text, ForeignKey("destinations.name"), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'PENDING'")),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_token", UUID(as_uuid=True)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("claimed_by_workflow_id", Text),
    Column("claimed_by_run_id", Text),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    # The Retry-After the destination gave for the last attempt: no attempt before it, even when the breaker
    # closes and drains the backlog.
    Column("not_before", DateTime(timezone=True)),
    CheckConstraint(sql_in("status", EVENT_STATUSES), name="status_known"),
    # Each order's deliveries to one destination, in sequence: what the claim's ordering check reads.
    UniqueConstraint("destination", "aggregate_type", "aggregate_id", "sequence", name="uq_event_deliveries_order"),
    Index("ix_event_deliveries_event_id", "event_id"),
    # What the relay scans: a destination's due PENDING deliveries, oldest first.
    Index(
        "ix_event_deliveries_due", "destination", "next_attempt_at", "id", postgresql_where=text("status = 'PENDING'")
    ),
    # Expired leases to give back.
    Index("ix_event_deliveries_leases", "lease_expires_at", postgresql_where=text("status = 'PROCESSING'")),
    Index("ix_event_deliveries_status_id", "destination", "status", "id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", UUID(as_uuid=True), ForeignKey("order_events.event_id", ondelete="CASCADE"), nullable=False),
    Column("destination", Text, nullable=False),
    # Counts one destination's attempts at the event, from 1.
    Column("attempt_number", Integer, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("outcome", Text, nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
    Column("duration_ms", Float),
    Column("workflow_id", Text),
    Column("run_id", Text),
    CheckConstraint(sql_in("outcome", LOGGED_OUTCOMES), name="outcome_known"),
    Index("ix_delivery_attempts_event_id", "event_id", "destination", "attempt_number"),
    # What one Temporal run did: a retried relay activity reports the attempts its lost predecessor made.
    Index("ix_delivery_attempts_run_id", "run_id"),
)

# Every operator action on an event (redrive, retry-now, replay, discard), kept after the event itself
# is discarded or removed by retention: hence no foreign key. What the event was before the action is
# recorded; `details` holds what the action alone knows (a discarded event's whole row and attempts).
operator_actions = Table(
    "operator_actions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    # The destination whose delivery the action changed.
    Column("destination", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("requested_by", Text, nullable=False),
    Column("status_before", Text, nullable=False),
    Column("retry_count_before", Integer, nullable=False),
    Column("last_error_before", Text),
    Column("details", JSONB),
    CheckConstraint(sql_in("action", OPERATOR_ACTIONS), name="action_known"),
    Index("ix_operator_actions_event_id", "event_id", "id"),
)

# The circuit breaker in front of each destination, shared by every worker and read by the CLI: one
# state, and one probe at a time across workers.
relay_breakers = Table(
    "relay_breakers",
    metadata,
    Column("destination", Text, primary_key=True),
    Column("state", Text, nullable=False, server_default=text("'CLOSED'")),
    # Platform failures (no answer, 5xx, 429, a refusal...) since the platform last accepted any event.
    Column("failures_in_a_row", Integer, nullable=False, server_default=text("0")),
    Column("opened_at", DateTime(timezone=True)),
    Column("next_probe_at", DateTime(timezone=True)),
    Column("probe_token", UUID(as_uuid=True)),
    Column("probe_expires_at", DateTime(timezone=True)),
    Column("last_failure", Text),
    Column("last_failure_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    # The sliding window the breaker judges by: answers and failures of the current slice and of the one before.
    Column("window_started_at", DateTime(timezone=True)),
    Column("window_answers", Integer, nullable=False, server_default=text("0")),
    Column("window_failures", Integer, nullable=False, server_default=text("0")),
    Column("previous_answers", Integer, nullable=False, server_default=text("0")),
    Column("previous_failures", Integer, nullable=False, server_default=text("0")),
    # The latest time a request was sent that the platform accepted: refusals of earlier requests are their own.
    Column("accepted_sent_at", DateTime(timezone=True)),
    # The longest Retry-After the platform gave while failing: no probe before it.
    Column("retry_after_until", DateTime(timezone=True)),
    # Seconds the breaker was open, in all, up to its last close (add now - opened_at while open).
    Column("open_seconds_total", Float, nullable=False, server_default=text("0")),
    # Set by a close: events in backoff after this time are still to be made due, in bounded batches.
    Column("drain_before", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(sql_in("state", BREAKER_STATES), name="state_known"),
)
