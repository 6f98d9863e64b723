"""Filling the outbox with many events at once (straight SQL), for retention and metrics tests."""

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
    destination: str = "platform",
) -> None:
    """`count` OrderCreated events of orders that do not exist, about `age` old (a millisecond apart), whose
    delivery to `destination` is in `status` (deliveries to other destinations are as the trigger writes them:
    PENDING, due).

    SENT ones were delivered then; PENDING ones wait out a day of backoff and PROCESSING ones hold a
    day-long lease, so that a relay running meanwhile leaves them as they are.
    """
    selected = {"first": first_order_id, "count": count}
    db.execute(
        """
        INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, created_at)
        SELECT gen_random_uuid(), 'order', (%(first)s + n)::text, 1, 'OrderCreated', '{"synthetic": true}',
               now() - %(age)s - make_interval(secs => n / 1000.0)
        FROM generate_series(0, %(count)s - 1) AS n
        """,
        {**selected, "age": age},
    )
    db.execute(
        """
        UPDATE event_deliveries AS delivery
        SET status = %(status)s, retry_count = CASE WHEN %(status)s = 'SENT' THEN 0 ELSE %(attempts)s END,
            sent_at = CASE WHEN %(status)s = 'SENT'
                           THEN now() - %(age)s + make_interval(secs => (delivery.aggregate_id::bigint - %(first)s)
                                                                        / 1000.0) END,
            last_error = CASE WHEN %(status)s = 'SENT' THEN NULL ELSE 'HTTP 503' END,
            next_attempt_at = now() + CASE WHEN %(status)s = 'PENDING' THEN interval '1 day' ELSE interval '0' END,
            lease_token = CASE WHEN %(status)s = 'PROCESSING' THEN gen_random_uuid() END,
            lease_expires_at = CASE WHEN %(status)s = 'PROCESSING' THEN now() + interval '1 day' END
        WHERE delivery.destination = %(destination)s AND delivery.aggregate_type = 'order'
          AND delivery.aggregate_id::bigint BETWEEN %(first)s AND %(first)s + %(count)s - 1
        """,
        {**selected, "status": status, "age": age, "attempts": attempts_each, "destination": destination},
    )
    db.execute(
        """
        INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, http_status)
        SELECT delivery.event_id, delivery.destination, attempt, event.created_at,
               CASE WHEN attempt = %(attempts)s AND delivery.status = 'SENT' THEN 'SENT' ELSE 'RETRY' END,
               CASE WHEN attempt = %(attempts)s AND delivery.status = 'SENT' THEN 201 ELSE 503 END
        FROM event_deliveries AS delivery JOIN order_events AS event ON event.id = delivery.id,
             generate_series(1, %(attempts)s) AS attempt
        WHERE delivery.destination = %(destination)s AND delivery.aggregate_type = 'order'
          AND delivery.aggregate_id::bigint BETWEEN %(first)s AND %(first)s + %(count)s - 1
        """,
        {**selected, "attempts": attempts_each, "destination": destination},
    )
    for table in ("order_events", "event_deliveries", "delivery_attempts"):
        db.execute(f"ANALYZE {table}")


def count_events(db: psycopg.Connection, status: str, destination: str = "platform") -> int:
    """How many events' deliveries to `destination` are in `status`."""
    return db.execute(
        "SELECT count(*) FROM event_deliveries WHERE status = %s AND destination = %s", (status, destination)
    ).fetchone()[0]
