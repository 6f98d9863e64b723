"""Claiming due events for delivery (PENDING -> PROCESSING under a lease), and giving back expired leases."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection


@dataclass(frozen=True)
class Claim:
    """Who claims: the lease length, and the Temporal run that will deliver."""

    batch_size: int
    lease_seconds: float
    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class ClaimedEvent:
    """One event now PROCESSING under the batch's lease."""

    id: int
    event_id: str
    aggregate_id: str
    sequence: int
    event_type: str


# Due events, oldest first, none of which has an earlier event of its order still unsent: that is
# what keeps each order's events in order, and a stuck event blocks only its own order. SKIP LOCKED
# lets several relays claim at once without waiting for, or taking, each other's rows.
_CLAIM = text(
    """
    WITH due AS (
        SELECT event.id FROM order_events AS event
        WHERE event.status = 'PENDING' AND event.next_attempt_at <= now()
          AND NOT EXISTS (
              SELECT FROM order_events AS earlier
              WHERE earlier.aggregate_type = event.aggregate_type
                AND earlier.aggregate_id = event.aggregate_id
                AND earlier.sequence < event.sequence
                AND earlier.status <> 'SENT')
        ORDER BY event.next_attempt_at, event.id
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    )
    UPDATE order_events AS event
    SET status = 'PROCESSING', lease_token = :lease_token,
        lease_expires_at = now() + make_interval(secs => :lease_seconds),
        claimed_by_workflow_id = :workflow_id, claimed_by_run_id = :run_id
    FROM due WHERE event.id = due.id
    RETURNING event.id, event.event_id, event.aggregate_id, event.sequence, event.event_type
    """
)

# A lease that outlived its relay (a crashed or stuck worker): the event goes back to PENDING, due
# now, and the unknown outcome counts as an attempt so that an event that crashes every relay ends
# FAILED instead of looping for ever.
_RELEASE_EXPIRED = text(
    """
    WITH expired AS (
        SELECT id FROM order_events
        WHERE status = 'PROCESSING' AND lease_expires_at < now()
        FOR UPDATE SKIP LOCKED
    ), released AS (
        UPDATE order_events AS event
        SET status = CASE WHEN event.retry_count + 1 >= :max_attempts THEN 'FAILED' ELSE 'PENDING' END,
            retry_count = event.retry_count + 1, next_attempt_at = now(),
            lease_token = NULL, lease_expires_at = NULL,
            last_error = 'lease expired before an outcome was recorded'
        FROM expired WHERE event.id = expired.id
        RETURNING event.event_id, event.claimed_by_workflow_id, event.claimed_by_run_id
    )
    INSERT INTO delivery_attempts (event_id, attempt_number, attempted_at, outcome, error, workflow_id, run_id)
    SELECT released.event_id,
           coalesce((SELECT max(attempt_number) FROM delivery_attempts WHERE event_id = released.event_id), 0) + 1,
           now(), 'LEASE_EXPIRED', 'lease expired before an outcome was recorded',
           released.claimed_by_workflow_id, released.claimed_by_run_id
    FROM released
    RETURNING event_id
    """
)


async def release_expired_leases(engine: AsyncEngine, max_attempts: int) -> list[str]:
    """Give back every expired lease; the event ids given back."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_RELEASE_EXPIRED, {"max_attempts": max_attempts})
        return [str(row.event_id) for row in rows]


async def claim_due_events(engine: AsyncEngine, claim: Claim) -> tuple[str, list[ClaimedEvent]]:
    """Claim up to `claim.batch_size` due events under a new lease: (lease token, events in claim order)."""
    lease_token = uuid.uuid4()
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(
            _CLAIM,
            {
                "batch_size": claim.batch_size,
                "lease_token": lease_token,
                "lease_seconds": claim.lease_seconds,
                "workflow_id": claim.workflow_id,
                "run_id": claim.run_id,
            },
        )
        events = [
            ClaimedEvent(row.id, str(row.event_id), row.aggregate_id, row.sequence, row.event_type) for row in rows
        ]
    return str(lease_token), sorted(events, key=lambda event: event.id)


@dataclass(frozen=True)
class LeasedEvent:
    """An event still leased to a batch: what the platform is sent, and which attempt this is."""

    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    payload: dict
    attempt: int


_STILL_LEASED = text(
    """
    SELECT event_id, event_type, aggregate_type, aggregate_id, sequence, created_at AS occurred_at, payload,
           retry_count + 1 AS attempt
    FROM order_events
    WHERE lease_token = :lease_token AND status = 'PROCESSING' AND lease_expires_at > now()
    ORDER BY id
    """
)


async def still_leased_events(engine: AsyncEngine, lease_token: str) -> list[LeasedEvent]:
    """The events of the batch whose lease still holds: only these may be sent."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_STILL_LEASED, {"lease_token": lease_token})
        return [LeasedEvent(**{**row._mapping, "event_id": str(row.event_id)}) for row in rows]


_GIVE_BACK = text(
    """
    UPDATE order_events SET status = 'PENDING', next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
    WHERE lease_token = :lease_token AND status = 'PROCESSING'
    """
)


async def give_back_claims(engine: AsyncEngine, lease_token: str) -> None:
    """Hand the batch's events that were not attempted back to PENDING, due now, as if never claimed."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(_GIVE_BACK, {"lease_token": lease_token})
