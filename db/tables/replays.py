"""Requests answered once and replayed: idempotency keys of placements, processed payment webhooks."""

from sqlalchemy import BigInteger, Column, DateTime, Index, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from db.tables.metadata import metadata

# The first answer to an Idempotency-Key, per customer, until it expires; the key is then free again.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    # A digest of the request, to tell a retry of it from another request under the same key.
    Column("request_fingerprint", Text, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    # The body of the first response: the order as it was placed.
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

# Every payment webhook processed, with its answer: a repeated webhook-id answers the same, changing nothing.
payment_webhooks = Table(
    "payment_webhooks",
    metadata,
    Column("webhook_id", Text, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("payment_id", Text, nullable=False),
    # CONFIRMED, or the code of the error it was answered with.
    Column("outcome", Text, nullable=False),
    # The order as confirmed, or {"detail": ...} of the error.
    Column("response", JSONB, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_payment_webhooks_processed_at", "processed_at"),
)
