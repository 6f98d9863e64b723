"""Claiming due events for delivery (PENDING -> PROCESSING under a lease), and giving back expired leases."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection


def event_description(event_type: str, sequence: int, aggregate_type: str, aggregate_id: str) -> str:
    """What an event is, in words: "OrderCreated #1 of order 42"."""
    return f"{event_type} #{sequence} of {aggregate_type} {aggregate_id}"


@dataclass(frozen=True)
class Claim:
    """Who claims: how many events at most, the lease length, the Temporal run that will deliver, for which
    destination.

    `probe` claims even while the destination's breaker is open: the one request that tests it.
    """

    batch_size: int
    lease_seconds: float
    workflow_id: str
    run_id: str
    destination: str
    probe: bool = False
    lease_token: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class LeasedEvent:
    """An event now PROCESSING under the batch's lease: what the platform is sent, and which attempt this is.

    `payload_json` is the stored JSON text, put into the platform's body as it is (no parse, no re-encode).
    """

    id: int
    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    payload_json: str
    attempt: int
    # The W3C traceparent of the span that wrote the event, if its process traced.
    traceparent: str | None = None

    @property
    def description(self) -> str:
        return event_description(self.event_type, self.sequence, self.aggregate_type, self.aggregate_id)


# A destination's due deliveries, none of which has an earlier event of its order still unsent to that
# destination: that is what keeps each order's events in order, per destination, and a stuck event
# blocks only its own order at its own destination. Live events are never
# starved: a share of every claim (FRESH_SHARE) goes to the newest due events among the last
# FRESH_WINDOW_IDS ids (an index range on (status, id), cheap whatever waits in backoff), the rest
# to the oldest due. A replay, a redrive or a backlog of retries (old ids) therefore drains beside
# live orders, never ahead of them. SKIP LOCKED lets several relays claim at once without waiting for,
# or taking, each other's rows. While the destination's breaker is open nothing is claimed but the
# probe. The claim returns the whole events, so a claim costs one statement.
FRESH_SHARE = 4
FRESH_WINDOW_IDS = 5000
_CLAIMABLE = """
          delivery.destination = :destination AND delivery.status = 'PENDING' AND delivery.next_attempt_at <= now()
          AND NOT EXISTS (
              SELECT FROM event_deliveries AS earlier
              WHERE earlier.destination = delivery.destination
                AND earlier.aggregate_type = delivery.aggregate_type
                AND earlier.aggregate_id = delivery.aggregate_id
                AND earlier.sequence < delivery.sequence
                AND earlier.status <> 'SENT')
          AND (CAST(:probe AS boolean) OR NOT EXISTS (
              SELECT FROM relay_breakers AS breaker
              WHERE breaker.destination = :destination AND breaker.state = 'OPEN'))
"""
_CLAIM = text(
    f"""
    WITH fresh AS (
        SELECT delivery.id FROM event_deliveries AS delivery
        WHERE {_CLAIMABLE}
          AND delivery.id > (SELECT coalesce(max(id), 0) FROM order_events) - {FRESH_WINDOW_IDS}
        ORDER BY delivery.id DESC
        LIMIT :fresh_size
        FOR UPDATE SKIP LOCKED
    ), oldest AS (
        SELECT delivery.id FROM event_deliveries AS delivery
        WHERE {_CLAIMABLE}
        ORDER BY delivery.next_attempt_at, delivery.id
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    ), due AS (
        SELECT id FROM fresh
        UNION ALL
        (SELECT id FROM oldest WHERE id NOT IN (SELECT id FROM fresh)
         LIMIT greatest(0, :batch_size - (SELECT count(*) FROM fresh)))
    )
    UPDATE event_deliveries AS delivery
    SET status = 'PROCESSING', lease_token = :lease_token,
        lease_expires_at = now() + make_interval(secs => :lease_seconds),
        claimed_by_workflow_id = :workflow_id, claimed_by_run_id = :run_id
    FROM due, order_events AS event
    WHERE delivery.destination = :destination AND delivery.id = due.id AND event.id = due.id
    RETURNING event.id, event.event_id, event.event_type, event.aggregate_type, event.aggregate_id, event.sequence,
              event.created_at, CAST(event.payload AS text), delivery.retry_count + 1, event.traceparent
    """
)

# A lease that outlived its relay (a crashed or stuck worker), or whose relay is known to be gone: the
# delivery goes back to PENDING, due now, and the unknown outcome counts as an attempt so that an event
# that crashes every relay ends FAILED instead of looping for ever. Every destination's leases at once.
_RELEASE = """
    WITH expired AS (
        SELECT id, destination FROM event_deliveries
        WHERE status = 'PROCESSING' AND {which}
        FOR UPDATE SKIP LOCKED
    ), released AS (
        UPDATE event_deliveries AS delivery
        SET status = CASE WHEN delivery.retry_count + 1 >= :max_attempts THEN 'FAILED' ELSE 'PENDING' END,
            retry_count = delivery.retry_count + 1, next_attempt_at = now(),
            lease_token = NULL, lease_expires_at = NULL,
            last_error = 'lease expired before an outcome was recorded'
        FROM expired WHERE delivery.id = expired.id AND delivery.destination = expired.destination
        RETURNING delivery.id, delivery.destination, delivery.event_id, delivery.aggregate_id, delivery.sequence,
                  delivery.aggregate_type, delivery.claimed_by_workflow_id, delivery.claimed_by_run_id
    ), logged AS (
        INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, error,
                                       workflow_id, run_id)
        SELECT released.event_id, released.destination,
               coalesce((SELECT max(attempt_number) FROM delivery_attempts
                         WHERE event_id = released.event_id AND destination = released.destination), 0) + 1,
               now(), 'LEASE_EXPIRED', 'lease expired before an outcome was recorded',
               released.claimed_by_workflow_id, released.claimed_by_run_id
        FROM released
    )
    SELECT released.event_id, released.aggregate_id, event.event_type, released.sequence, released.aggregate_type,
           released.claimed_by_run_id, released.destination
    FROM released JOIN order_events AS event ON event.id = released.id
"""
_RELEASE_EXPIRED = text(_RELEASE.format(which="lease_expires_at < now()"))
_RELEASE_LEASES = text(_RELEASE.format(which="lease_token = ANY(CAST(:lease_tokens AS uuid[]))"))


@dataclass(frozen=True)
class ReleasedLease:
    """A delivery given back after its relay vanished, and the run that had claimed it."""

    event_id: str
    aggregate_id: str
    event_type: str
    sequence: int
    aggregate_type: str
    claimed_by_run_id: str | None
    destination: str

    @property
    def description(self) -> str:
        return event_description(self.event_type, self.sequence, self.aggregate_type, self.aggregate_id)


async def release_expired_leases(engine: AsyncEngine, max_attempts: int) -> list[ReleasedLease]:
    """Give back every expired lease."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_RELEASE_EXPIRED, {"max_attempts": max_attempts})
        return [ReleasedLease(str(row.event_id), *row[1:]) for row in rows]


async def release_leases(engine: AsyncEngine, lease_tokens: list[uuid.UUID], max_attempts: int) -> list[ReleasedLease]:
    """Give back, expired or not, the claims under `lease_tokens`: their relay is known to be gone."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_RELEASE_LEASES, {"max_attempts": max_attempts, "lease_tokens": lease_tokens})
        return [ReleasedLease(str(row.event_id), *row[1:]) for row in rows]


async def claim_due_events(engine: AsyncEngine, claim: Claim) -> list[LeasedEvent]:
    """Claim up to `claim.batch_size` due events under the claim's lease (`claim.lease_token`), in claim order."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(
            _CLAIM,
            {
                "batch_size": claim.batch_size,
                "fresh_size": max(1, claim.batch_size // FRESH_SHARE),
                "lease_token": claim.lease_token,
                "lease_seconds": claim.lease_seconds,
                "workflow_id": claim.workflow_id,
                "run_id": claim.run_id,
                "destination": claim.destination,
                "probe": claim.probe,
            },
        )
        events = [
            LeasedEvent(row[0], str(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])
            for row in rows
        ]
    events.sort(key=lambda event: event.id)
    return events


_GIVE_BACK = text(
    """
    UPDATE event_deliveries
    SET status = 'PENDING', next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL
    WHERE lease_token = :lease_token AND status = 'PROCESSING'
    RETURNING event_id
    """
)


async def give_back_claims(engine: AsyncEngine, lease_token: str) -> int:
    """Hand the batch's deliveries that were not attempted back to PENDING, due now, as if never claimed; how many."""
    async with autocommit_connection(engine) as connection:
        return len((await connection.execute(_GIVE_BACK, {"lease_token": lease_token})).all())


# What waits for a destination, for the run's page: counted up to BACKLOG_COUNT_CAP (an index-only scan
# of at most that many entries), and the age of the oldest PENDING event (the first entry of the
# (destination, status, id) index).
BACKLOG_COUNT_CAP = 200_000
_BACKLOG = text(
    f"""
    SELECT (SELECT count(*) FROM (SELECT 1 FROM event_deliveries
                                  WHERE destination = :destination AND status IN ('PENDING', 'PROCESSING')
                                  LIMIT {BACKLOG_COUNT_CAP}) AS waiting) AS waiting,
           (SELECT extract(epoch FROM now() - event.created_at) FROM order_events AS event
            WHERE event.id = (SELECT id FROM event_deliveries WHERE destination = :destination AND status = 'PENDING'
                              ORDER BY id LIMIT 1)) AS oldest_seconds
    """
)


@dataclass(frozen=True)
class Backlog:
    """Events not yet delivered (PENDING or PROCESSING; at most BACKLOG_COUNT_CAP), and the oldest one's age."""

    waiting: int
    oldest_waiting_seconds: float


async def backlog_of_outbox(engine: AsyncEngine, destination: str) -> Backlog:
    """How many events wait for delivery to `destination`, and how long the oldest PENDING one has waited (0: none)."""
    async with autocommit_connection(engine) as connection:
        row = (await connection.execute(_BACKLOG, {"destination": destination})).one()
    return Backlog(int(row.waiting), float(row.oldest_seconds or 0.0))
