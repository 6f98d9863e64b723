"""Filling the outbox with many events at once (straight SQL), for retention tests."""

from datetime import timedelta

import psycopg

# Aggregate ids of synthetic events start here: far above the orders a test places.
SYNTHETIC_ORDER_IDS = 10_000_000


def insert_events(
    db: psycopg.Connection,
    count: int,
    *,
    status: str,
    age: timedelta,
    attempts_each: int = 1,
    first_order_id: int = SYNTHETIC_ORDER_IDS,
) -> None:
    """`count` OrderCreated events of orders that do not exist, about `age` old (a millisecond apart).

    SENT ones were delivered then; PENDING ones wait out a day of backoff and PROCESSING ones hold a
    day-long lease, so that a relay running meanwhile leaves them as they are.
    """
    db.execute(
        """
        INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, status,
                                  retry_count, created_at, sent_at, last_error, next_attempt_at, lease_token,
                                  lease_expires_at)
        SELECT gen_random_uuid(), 'order', (%(first)s + n)::text, 1, 'OrderCreated', '{"synthetic": true}',
               %(status)s, CASE WHEN %(status)s = 'SENT' THEN 0 ELSE %(attempts)s END,
               now() - %(age)s - make_interval(secs => n / 1000.0),
               CASE WHEN %(status)s = 'SENT' THEN now() - %(age)s + make_interval(secs => n / 1000.0) END,
               CASE WHEN %(status)s = 'SENT' THEN NULL ELSE 'HTTP 503' END,
               now() + CASE WHEN %(status)s = 'PENDING' THEN interval '1 day' ELSE interval '0' END,
               CASE WHEN %(status)s = 'PROCESSING' THEN gen_random_uuid() END,
               CASE WHEN %(status)s = 'PROCESSING' THEN now() + interval '1 day' END
        FROM generate_series(0, %(count)s - 1) AS n
        """,
        {"first": first_order_id, "status": status, "age": age, "attempts": attempts_each, "count": count},
    )
    db.execute(
        """
        INSERT INTO delivery_attempts (event_id, attempt_number, attempted_at, outcome, http_status)
        SELECT event.event_id, attempt, event.created_at,
               CASE WHEN attempt = %(attempts)s AND event.status = 'SENT' THEN 'SENT' ELSE 'RETRY' END,
               CASE WHEN attempt = %(attempts)s AND event.status = 'SENT' THEN 201 ELSE 503 END
        FROM order_events AS event, generate_series(1, %(attempts)s) AS attempt
        WHERE event.aggregate_id::bigint BETWEEN %(first)s AND %(first)s + %(count)s - 1
        """,
        {"first": first_order_id, "attempts": attempts_each, "count": count},
    )
    db.execute("ANALYZE order_events")
    db.execute("ANALYZE delivery_attempts")


def count_events(db: psycopg.Connection, status: str) -> int:
    return db.execute("SELECT count(*) FROM order_events WHERE status = %s", (status,)).fetchone()[0]
