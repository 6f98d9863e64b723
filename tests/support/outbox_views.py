"""Reading the outbox and the attempt log in tests, and waiting for events to settle."""

import psycopg
from psycopg.rows import dict_row

from tests.support.polling import wait_until


def event_rows(db: psycopg.Connection) -> list[dict]:
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute("SELECT * FROM order_events ORDER BY id").fetchall()


def attempts_of(db: psycopg.Connection, event_id) -> list[dict]:
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT * FROM delivery_attempts WHERE event_id = %s ORDER BY attempt_number, id", (event_id,)
        ).fetchall()


def wait_for_statuses(db: psycopg.Connection, *statuses: str, timeout: float = 30) -> list[dict]:
    """Wait until every event is in one of `statuses`; return the rows."""

    def settled() -> list[dict] | None:
        # Polled with a count and read once settled: reading thousands of rows fifty times a second took the CPU
        # (and, beside the in-process sink, the GIL) from the relay the test was timing.
        total, unsettled = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE status <> ALL(%s)) FROM order_events", (list(statuses),)
        ).fetchone()
        if not total or unsettled:
            return None
        rows = event_rows(db)
        return rows if all(row["status"] in statuses for row in rows) else None

    return wait_until(settled, timeout=timeout, what=f"every event to be {' or '.join(statuses)}")


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


def platform_accepts_others(db: psycopg.Connection, platform_url: str) -> None:
    """Arrange that the platform is known to accept other events (sent up to an hour from now), as if they were
    delivered meanwhile: a refusal (4xx) is then the refused event's own, FAILED at once, not the platform's."""
    db.execute(
        "INSERT INTO relay_breakers (platform, accepted_sent_at) VALUES (%s, now() + interval '1 hour')"
        " ON CONFLICT (platform) DO UPDATE SET accepted_sent_at = EXCLUDED.accepted_sent_at",
        (platform_url,),
    )
