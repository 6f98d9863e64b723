"""Several destinations, each on its own: every event of the types it takes, in order per order, with its own
delivery state, breaker and failures; one destination down or refusing never holds up another.

Real worker processes on the suite's stock Temporal dev server, real PostgreSQL, and two real sinks on
loopback, configured through DESTINATIONS_FILE.
"""

import json
import threading
import time
from collections import defaultdict

import pytest

from tests.support.live_events import commit_to_delivery_ms, live_orders, percentile
from tests.support.outbox_views import event_rows, insert_pending_events, platform_accepts_others, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.sink_control import Sink, serve_sink

# An order's events, as its life would write them: created, then confirmed or cancelled.
LIFE = ("OrderCreated", "OrderConfirmed", "OrderCancelled")


@pytest.fixture
def warehouse(background):
    """A second sink: the warehouse system."""
    with serve_sink(background) as url:
        yield Sink(url)


def configure_destinations(relay, tmp_path, destinations: list[dict]) -> None:
    path = tmp_path / "destinations.json"
    path.write_text(json.dumps(destinations))
    relay.config.extra["DESTINATIONS_FILE"] = str(path)


def insert_order_lives(db, order_ids: list[str]) -> None:
    """Three events for each order (sequence 1 to 3), written at once: the relay must still deliver them in order."""
    db.execute(
        "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
        " SELECT gen_random_uuid(), 'order', order_id, step, (CAST(%s AS text[]))[step],"
        " jsonb_build_object('order_id', order_id, 'synthetic', true)"
        " FROM unnest(CAST(%s AS text[])) AS order_id, generate_series(1, 3) AS step",
        (list(LIFE), order_ids),
    )


def sequences_by_order(sink: Sink) -> dict[str, list[int]]:
    """Each order's sequences in the order the sink received them."""
    arrived = defaultdict(list)
    for event in sink.received():
        arrived[event["body"]["aggregate_id"]].append(event["body"]["sequence"])
    return arrived


def test_each_destination_gets_every_event_of_the_types_it_takes_in_order(
    db, catalog, sink, warehouse, relay, tmp_path
):
    configure_destinations(
        relay,
        tmp_path,
        [
            {"name": "platform", "url": sink.url},
            {"name": "warehouse", "url": warehouse.url, "event_types": ["OrderCreated", "OrderCancelled"]},
        ],
    )
    relay.start_worker()
    orders = [f"life-{number}" for number in range(30)]
    insert_order_lives(db, orders)

    wait_for_statuses(db, "SENT", destination="platform")
    wait_for_statuses(db, "SENT", destination="warehouse")

    assert sequences_by_order(sink) == {order: [1, 2, 3] for order in orders}
    assert sequences_by_order(warehouse) == {order: [1, 3] for order in orders}  # no OrderConfirmed
    assert {event["body"]["event_type"] for event in warehouse.received()} == {"OrderCreated", "OrderCancelled"}
    # The same event keeps its id at every destination.
    platform_ids = {event["body"]["event_id"] for event in sink.received()}
    assert {event["body"]["event_id"] for event in warehouse.received()} < platform_ids


def test_a_poison_event_fails_at_its_destination_only(db, catalog, sink, warehouse, relay, tmp_path):
    configure_destinations(
        relay, tmp_path, [{"name": "platform", "url": sink.url}, {"name": "warehouse", "url": warehouse.url}]
    )
    platform_accepts_others(db, "warehouse")  # the 400 is the event's own, FAILED at once
    warehouse.set_faults(fail_orders=["poison"], fail_statuses=[400])
    relay.start_worker()
    insert_pending_events(db, ["healthy-1", "poison", "healthy-2"])

    at_platform = wait_for_statuses(db, "SENT", destination="platform")
    at_warehouse = wait_for_statuses(db, "SENT", "FAILED", destination="warehouse")

    assert {row["aggregate_id"]: row["status"] for row in at_warehouse} == {
        "healthy-1": "SENT",
        "poison": "FAILED",
        "healthy-2": "SENT",
    }
    assert {row["aggregate_id"] for row in at_platform} == {"healthy-1", "poison", "healthy-2"}
    [attempt] = db.execute(
        "SELECT destination, outcome, http_status FROM delivery_attempts AS attempt"
        " JOIN order_events AS event USING (event_id) WHERE event.aggregate_id = 'poison'"
        " AND attempt.destination = 'warehouse'"
    ).fetchall()
    assert attempt == ("warehouse", "FAILED", 400)


@pytest.mark.heavy  # a latency bar: at most two such tests at once (tests/support/scheduling.py)
@pytest.mark.flaky(reruns=2)  # a latency bar on a shared two-core machine
def test_one_destination_down_leaves_the_others_latency_as_it_was(
    database_url, db, catalog, sink, warehouse, relay, tmp_path
):
    configure_destinations(
        relay, tmp_path, [{"name": "platform", "url": sink.url}, {"name": "warehouse", "url": warehouse.url}]
    )
    # The product's budget (the test relay's 4 attempts 50 ms apart would be spent before the breaker opens).
    relay.config.extra.update({"RELAY_MAX_ATTEMPTS": "10", "RELAY_BACKOFF_BASE_SECONDS": "0.5"})
    relay.start_worker()
    phase_seconds, per_second = 20, 10

    def phase(prefix: str) -> list[float]:
        stop, written = threading.Event(), []
        flow = threading.Thread(target=live_orders, args=(database_url, stop, per_second, prefix, written))
        flow.start()
        time.sleep(phase_seconds)  # the phase's length is what is measured: events flow meanwhile
        stop.set()
        flow.join()
        wait_until(
            lambda: len(commit_to_delivery_ms(db, prefix, "platform")) == len(written),
            timeout=30,
            what=f"{prefix} events at the platform",
        )
        return commit_to_delivery_ms(db, prefix, "platform")

    both_healthy = phase("healthy")
    warehouse.set_faults(down=True)
    warehouse_down = phase("down")
    waiting_at_warehouse = [row for row in event_rows(db, "warehouse") if row["status"] != "SENT"]
    warehouse.set_faults()

    assert len(waiting_at_warehouse) >= phase_seconds * per_second * 0.9  # it really was down meanwhile
    down_p99, healthy_p99 = percentile(warehouse_down, 0.99), percentile(both_healthy, 0.99)
    assert down_p99 <= 1.1 * healthy_p99, (
        f"platform p99 {down_p99:.1f} ms with the warehouse down, {healthy_p99:.1f} healthy"
    )
    settled = wait_for_statuses(db, "SENT", "FAILED", destination="warehouse", timeout=30)
    assert {row["status"] for row in settled} == {"SENT"}  # the outage held the warehouse's events, spent none
