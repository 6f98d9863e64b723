"""Reading the outbox and the attempt log in tests, and waiting for events to settle."""

import psycopg
from psycopg.rows import dict_row

from tests.support.polling import wait_until


def event_rows(db: psycopg.Connection, destination: str = "platform") -> list[dict]:
    """Every event with its delivery to `destination` (status, retry_count, sent_at...), oldest first."""
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT event.*, delivery.destination, delivery.status, delivery.retry_count, delivery.next_attempt_at,"
            " delivery.lease_token, delivery.lease_expires_at, delivery.claimed_by_workflow_id,"
            " delivery.claimed_by_run_id, delivery.last_error, delivery.sent_at, delivery.not_before"
            " FROM order_events AS event JOIN event_deliveries AS delivery"
            " ON delivery.id = event.id AND delivery.destination = %s ORDER BY event.id",
            (destination,),
        ).fetchall()


def attempts_of(db: psycopg.Connection, event_id, destination: str = "platform") -> list[dict]:
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT * FROM delivery_attempts WHERE event_id = %s AND destination = %s ORDER BY attempt_number, id",
            (event_id, destination),
        ).fetchall()


def wait_for_statuses(
    db: psycopg.Connection, *statuses: str, timeout: float = 30, destination: str = "platform"
) -> list[dict]:
    """Wait until every event's delivery to `destination` is in one of `statuses`; return the rows."""

    def settled() -> list[dict] | None:
        # Polled with a count and read once settled: reading thousands of rows fifty times a second took the CPU
        # (and, beside the in-process sink, the GIL) from the relay the test was timing.
        total, unsettled = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE status <> ALL(%s)) FROM event_deliveries WHERE destination = %s",
            (list(statuses), destination),
        ).fetchone()
        if not total or unsettled:
            return None
        rows = event_rows(db, destination)
        return rows if all(row["status"] in statuses for row in rows) else None

    return wait_until(settled, timeout=timeout, what=f"every event to be {' or '.join(statuses)} at {destination}")


def insert_pending_events(db: psycopg.Connection, aggregate_ids: list[str]) -> list[str]:
    """Write one PENDING OrderCreated event for each of `aggregate_ids`, as placing those orders would; their ids.

    The orders do not exist: their payloads are stubs marked `synthetic`, which the check of delivered
    events against /asyncapi.json (tests/support/event_contract.py) leaves out.
    """
    rows = db.execute(
        "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
        " SELECT gen_random_uuid(), 'order', aggregate_id, 1, 'OrderCreated',"
        " jsonb_build_object('order_id', aggregate_id, 'status', 'CREATED', 'total', 139000, 'synthetic', true)"
        " FROM unnest(CAST(%s AS text[])) AS aggregate_id RETURNING event_id",
        (aggregate_ids,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def platform_accepts_others(db: psycopg.Connection, destination: str = "platform") -> None:
    """Arrange that the destination is known to accept other events (sent up to an hour from now), as if they were
    delivered meanwhile: a refusal (4xx) is then the refused event's own, FAILED at once, not the destination's."""
    db.execute(
        "INSERT INTO relay_breakers (destination, accepted_sent_at) VALUES (%s, now() + interval '1 hour')"
        " ON CONFLICT (destination) DO UPDATE SET accepted_sent_at = EXCLUDED.accepted_sent_at",
        (destination,),
    )


def add_destination(db: psycopg.Connection, name: str, event_types: list[str] | None = None) -> None:
    """Add a destination as the worker does for a new one in the configuration: events written from now on get a
    delivery to it (the trigger on order_events)."""
    db.execute(
        "INSERT INTO destinations (name, event_types) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET event_types = EXCLUDED.event_types, removed_at = NULL",
        (name, event_types),
    )


def remove_destination(db: psycopg.Connection, name: str) -> None:
    """Take a destination out of the configuration, as the worker does."""
    db.execute("UPDATE destinations SET removed_at = now() WHERE name = %s", (name,))
