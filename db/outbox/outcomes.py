"""Recording delivery attempts: every attempt is logged; its outcome changes the delivery only under its lease."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.outbox.claims import event_description

# HELD: the attempt failed while the platform failed (or refused) for every event; the event keeps its budget.
Outcome = Literal["SENT", "RETRY", "FAILED", "HELD"]
REFUSAL_STATUSES = range(400, 500)


@dataclass(frozen=True)
class AttemptOutcome:
    """One delivery attempt and what it means for the event."""

    event_id: str
    attempted_at: datetime
    duration_ms: float
    outcome: Outcome
    http_status: int | None = None
    error: str | None = None
    retry_in_seconds: float = 0.0
    # A Retry-After (capped): the event's next attempt never comes before it, whatever the breaker does.
    not_before_seconds: float | None = None


@dataclass(frozen=True)
class Run:
    """The Temporal run that made the attempts."""

    workflow_id: str
    run_id: str


# One statement: the outcomes are applied to the destination's deliveries still leased to this batch,
# and every attempt is logged, those that came too late (the lease was given back meanwhile) as STALE.
_RECORD = text(
    """
    WITH outcome AS (
        SELECT * FROM unnest(
            CAST(:event_ids AS uuid[]), CAST(:outcomes AS text[]), CAST(:retry_in AS float8[]),
            CAST(:errors AS text[]), CAST(:http_statuses AS integer[]), CAST(:attempted_at AS timestamptz[]),
            CAST(:durations AS float8[]), CAST(:not_before AS float8[])
        ) AS outcome(event_id, outcome, retry_in_seconds, error, http_status, attempted_at, duration_ms,
                     not_before_seconds)
    ), applied AS (
        UPDATE event_deliveries AS delivery SET
            status = CASE outcome.outcome WHEN 'SENT' THEN 'SENT' WHEN 'FAILED' THEN 'FAILED' ELSE 'PENDING' END,
            retry_count = delivery.retry_count
                + CASE outcome.outcome WHEN 'RETRY' THEN 1 WHEN 'FAILED' THEN 1 ELSE 0 END,
            next_attempt_at = CASE WHEN outcome.outcome IN ('RETRY', 'HELD')
                THEN now() + make_interval(secs => outcome.retry_in_seconds)
                ELSE delivery.next_attempt_at END,
            not_before = CASE WHEN outcome.outcome IN ('RETRY', 'HELD') AND outcome.not_before_seconds IS NOT NULL
                THEN now() + make_interval(secs => outcome.not_before_seconds) END,
            sent_at = CASE outcome.outcome WHEN 'SENT' THEN now() END,
            last_error = CASE outcome.outcome WHEN 'SENT' THEN NULL ELSE outcome.error END,
            lease_token = NULL, lease_expires_at = NULL
        FROM outcome
        WHERE delivery.event_id = outcome.event_id AND delivery.destination = :destination
          AND delivery.lease_token = :lease_token AND delivery.status = 'PROCESSING'
        RETURNING delivery.event_id
    )
    INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, http_status, error,
                                   duration_ms, workflow_id, run_id)
    SELECT outcome.event_id, :destination,
           coalesce((SELECT max(attempt_number) FROM delivery_attempts AS logged
                     WHERE logged.event_id = outcome.event_id AND logged.destination = :destination), 0) + 1,
           outcome.attempted_at,
           CASE WHEN outcome.event_id IN (SELECT event_id FROM applied) THEN outcome.outcome ELSE 'STALE' END,
           outcome.http_status, outcome.error, outcome.duration_ms, :workflow_id, :run_id
    FROM outcome
    RETURNING event_id, outcome
    """
)


async def record_attempts(
    engine: AsyncEngine, destination: str, lease_token: str, attempts: list[AttemptOutcome], run: Run
) -> dict[str, str]:
    """Log `attempts` at `destination` and apply their outcomes where the lease still holds: event id -> outcome
    as logged."""
    if not attempts:
        return {}
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(
            _RECORD,
            {
                "destination": destination,
                "lease_token": lease_token,
                "event_ids": [attempt.event_id for attempt in attempts],
                "outcomes": [attempt.outcome for attempt in attempts],
                "retry_in": [attempt.retry_in_seconds for attempt in attempts],
                "errors": [attempt.error for attempt in attempts],
                "http_statuses": [attempt.http_status for attempt in attempts],
                "attempted_at": [attempt.attempted_at for attempt in attempts],
                "durations": [attempt.duration_ms for attempt in attempts],
                "not_before": [attempt.not_before_seconds for attempt in attempts],
                "workflow_id": run.workflow_id,
                "run_id": run.run_id,
            },
        )
        return {str(row.event_id): row.outcome for row in rows}


@dataclass(frozen=True)
class RunAttempt:
    """An attempt a Temporal run made, as logged: which event, of which order, and how it ended."""

    event_id: str
    aggregate_id: str
    event_type: str
    sequence: int
    aggregate_type: str
    outcome: str
    http_status: int | None
    error: str | None

    @property
    def description(self) -> str:
        return event_description(self.event_type, self.sequence, self.aggregate_type, self.aggregate_id)


_RUN_ATTEMPTS = text(
    """
    SELECT attempt.event_id, event.aggregate_id, event.event_type, event.sequence, event.aggregate_type,
           attempt.outcome, attempt.http_status, attempt.error
    FROM delivery_attempts AS attempt JOIN order_events AS event ON event.event_id = attempt.event_id
    WHERE attempt.run_id = :run_id AND attempt.destination = :destination AND attempt.attempted_at >= :since
    ORDER BY attempt.id
    """
)


async def attempts_of_run(engine: AsyncEngine, run_id: str, destination: str, since: datetime) -> list[RunAttempt]:
    """The attempts at `destination` the run `run_id` logged since `since`."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_RUN_ATTEMPTS, {"run_id": run_id, "destination": destination, "since": since})
        return [RunAttempt(str(row.event_id), *row[1:]) for row in rows]


# Each event's latest logged attempt at one destination.
_LATEST_ATTEMPTS = text(
    """
    SELECT DISTINCT ON (event_id) event_id, outcome, http_status, attempted_at
    FROM delivery_attempts WHERE event_id = ANY(CAST(:event_ids AS uuid[])) AND destination = :destination
    ORDER BY event_id, attempt_number DESC
    """
)


async def confirmed_refusals(
    engine: AsyncEngine, destination: str, refused: list[tuple[str, datetime]], accepted_sent_at: datetime | None
) -> set[str]:
    """Of events just refused by `destination` (event id, when the refused request was sent), those whose refusal
    is their own: the destination accepted a request sent at or after this one, or after the event's previous
    attempt, itself a refusal that was held. A refusal no other event is seen to escape is the destination's
    (held, not FAILED)."""
    if not refused or accepted_sent_at is None:
        return set()
    confirmed = {event_id for event_id, sent_at in refused if sent_at <= accepted_sent_at}
    unsure = [event_id for event_id, _ in refused if event_id not in confirmed]
    if unsure:
        async with autocommit_connection(engine) as connection:
            for row in await connection.execute(_LATEST_ATTEMPTS, {"event_ids": unsure, "destination": destination}):
                if (
                    row.outcome == "HELD"
                    and row.http_status in REFUSAL_STATUSES
                    and row.attempted_at <= accepted_sent_at
                ):
                    confirmed.add(str(row.event_id))
    return confirmed
