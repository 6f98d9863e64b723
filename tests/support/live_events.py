"""Live events written at a steady pace beside whatever a test does, and how long each took to be delivered."""

import threading

import psycopg

from devstack.local_postgres import libpq_url
from tests.support.outbox_views import insert_pending_events


def live_orders(database_url: str, stop: threading.Event, per_second: float, prefix: str, written: list) -> None:
    """Insert one live event every 1/per_second s until `stop` (a connection of this thread's own)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as db:
        while not stop.wait(1 / per_second):
            aggregate_id = f"{prefix}-{len(written)}"
            insert_pending_events(db, [aggregate_id])
            written.append(aggregate_id)


def commit_to_delivery_ms(db, prefix: str, destination: str = "platform") -> list[float]:
    """Commit to delivery at `destination`, in ms, of the SENT events whose order ids start with `prefix-`."""
    rows = db.execute(
        "SELECT extract(epoch FROM delivery.sent_at - event.created_at) * 1000"
        " FROM order_events AS event JOIN event_deliveries AS delivery USING (id)"
        " WHERE event.aggregate_id LIKE %s AND delivery.destination = %s AND delivery.status = 'SENT' ORDER BY 1",
        (f"{prefix}-%", destination),
    ).fetchall()
    return [float(row[0]) for row in rows]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
