"""Builders the lifecycle tests share: placing orders, and putting outbox events into a given state."""

from datetime import timedelta

import psycopg

from tests.support.ordering import placed


def place_order(api, catalog, product: str = "af1", quantity: int = 1, customer: str = "c-1", coupon=None) -> dict:
    """Place an order through the API as `customer` (201 expected); the order as answered."""
    coupon_id = catalog.coupons[coupon] if coupon else None
    return placed(api, (catalog.products[product], quantity), coupon_id=coupon_id, customer=customer)


def event_ids_of(db: psycopg.Connection, order_id: int) -> list[str]:
    """The event ids of one order, in sequence."""
    rows = db.execute(
        "SELECT event_id FROM order_events WHERE aggregate_id = %s ORDER BY sequence", (str(order_id),)
    ).fetchall()
    return [str(row[0]) for row in rows]


def log_attempt(
    db: psycopg.Connection,
    event_id: str,
    outcome: str,
    http_status: int | None,
    ago: timedelta,
    destination: str = "platform",
) -> None:
    """Add a delivery attempt to `destination` to the log, as a relay would have."""
    db.execute(
        "INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, http_status,"
        " error) SELECT %s, %s, coalesce(max(attempt_number), 0) + 1, now() - %s, %s, %s, %s"
        " FROM delivery_attempts WHERE event_id = %s AND destination = %s",
        (
            event_id,
            destination,
            ago,
            outcome,
            http_status,
            None if outcome == "SENT" else f"HTTP {http_status}",
            event_id,
            destination,
        ),
    )


def make_failed(
    db: psycopg.Connection, event_id: str, *, created_ago: timedelta = timedelta(0), destination: str = "platform"
) -> None:
    """The event's delivery to `destination` failed: a 503 retried, then a 422 refused (the event created
    `created_ago`)."""
    log_attempt(db, event_id, "RETRY", 503, timedelta(seconds=2), destination)
    log_attempt(db, event_id, "FAILED", 422, timedelta(seconds=1), destination)
    db.execute(
        "UPDATE event_deliveries SET status = 'FAILED', retry_count = 2, last_error = 'HTTP 422'"
        " WHERE event_id = %s AND destination = %s",
        (event_id, destination),
    )
    if created_ago:
        db.execute("UPDATE order_events SET created_at = now() - %s WHERE event_id = %s", (created_ago, event_id))


def make_sent(
    db: psycopg.Connection, event_id: str, *, sent_ago: timedelta = timedelta(0), destination: str = "platform"
) -> None:
    """The event was delivered to `destination` at the first attempt, `sent_ago`."""
    log_attempt(db, event_id, "SENT", 201, sent_ago, destination)
    db.execute(
        "UPDATE event_deliveries SET status = 'SENT', sent_at = now() - %s WHERE event_id = %s AND destination = %s",
        (sent_ago, event_id, destination),
    )


def make_backing_off(
    db: psycopg.Connection, event_id: str, *, due_in: timedelta, destination: str = "platform"
) -> None:
    """The event's first attempt at `destination` got a 503: PENDING, due again in `due_in`."""
    log_attempt(db, event_id, "RETRY", 503, timedelta(0), destination)
    db.execute(
        "UPDATE event_deliveries SET retry_count = 1, last_error = 'HTTP 503', next_attempt_at = now() + %s"
        " WHERE event_id = %s AND destination = %s",
        (due_in, event_id, destination),
    )


def status_of(db: psycopg.Connection, event_id: str, destination: str = "platform") -> str | None:
    """The status of the event's delivery to `destination`; None when it has none (or the event is gone)."""
    row = db.execute(
        "SELECT status FROM event_deliveries WHERE event_id = %s AND destination = %s", (event_id, destination)
    ).fetchone()
    return row[0] if row else None


def actions_of(db: psycopg.Connection, event_id: str, destination: str = "platform") -> list[tuple]:
    """(action, requested_by, status_before) of every operator action on the event's delivery to `destination`,
    oldest first."""
    return db.execute(
        "SELECT action, requested_by, status_before FROM operator_actions WHERE event_id = %s AND destination = %s"
        " ORDER BY id",
        (event_id, destination),
    ).fetchall()
