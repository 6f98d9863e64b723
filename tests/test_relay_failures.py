"""Crashes, shutdowns, concurrent relays and a Temporal outage: nothing committed is lost."""

from collections import Counter

from temporalio.testing import WorkflowEnvironment

from tests.support.ordering import order_body, place_concurrently, placed
from tests.support.outbox_views import attempts_of, event_rows, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.temporal_server import start_dev_server


def place_orders(api, catalog, count):
    """Place `count` one-pair orders, spread over the test products that have stock."""
    products = [catalog.products[name] for name in ("af1", "dunk", "samba")]
    orders = []
    for number in range(count):
        orders.append(placed(api, (products[number % len(products)], 1), customer=f"c-{number}"))
    return orders


def assert_every_event_arrived_without_gaps(db, sink):
    received = Counter(event["key"] for event in sink.received())
    assert set(received) == {str(row["event_id"]) for row in event_rows(db)}
    assert sink.stats()["gaps"] == []


def test_a_worker_killed_mid_batch_loses_nothing(api, db, catalog, sink, relay):
    sink.set_faults(delay_ms=1500)
    first = relay.start_worker("doomed")
    place_orders(api, catalog, 6)
    wait_until(lambda: any(row["status"] == "PROCESSING" for row in event_rows(db)), what="a batch in flight")

    first.kill()
    sink.set_faults()
    relay.start_worker("survivor")

    rows = wait_for_statuses(db, "SENT", timeout=90)
    assert_every_event_arrived_without_gaps(db, sink)
    outcomes = Counter(attempt["outcome"] for row in rows for attempt in attempts_of(db, row["event_id"]))
    assert outcomes["SENT"] == 6
    # Any duplicate at the sink is a repeat of the same event id (at least once), never a new one.
    assert sink.stats()["received"] == 6


def test_sigterm_lets_in_flight_deliveries_finish(api, db, catalog, sink, relay):
    sink.set_faults(delay_ms=1000)
    place_orders(api, catalog, 4)
    worker = relay.start_worker()
    wait_until(lambda: sink.stats()["requests"] == 4, what="four deliveries in flight")

    assert worker.stop() == 0

    assert [row["status"] for row in event_rows(db)] == ["SENT"] * 4
    assert [event["deliveries"] for event in sink.received()] == [1] * 4


def test_deliveries_cut_off_by_a_short_shutdown_hand_their_claims_back(api, db, catalog, sink, relay):
    sink.set_faults(delay_ms=5000)
    relay.config.extra["RELAY_SHUTDOWN_GRACE_SECONDS"] = "0.5"
    place_orders(api, catalog, 3)
    worker = relay.start_worker()
    wait_until(lambda: sink.stats()["requests"] == 3, what="three deliveries in flight")

    assert worker.stop() == 0

    assert [(row["status"], row["lease_token"]) for row in event_rows(db)] == [("PENDING", None)] * 3
    sink.set_faults()
    relay.start_worker("next")
    wait_for_statuses(db, "SENT")


def test_two_workers_and_an_extra_relay_never_deliver_an_attempt_twice(api_url, db, catalog, sink, relay):
    # Answers take 1.5 s, so a relay holds its claims that long: forty events are more than any one relay
    # can hold (lanes x batch size), and the other relay, polling every 50 ms, claims the rest meanwhile.
    sink.set_faults(delay_ms=1500)
    relay.config.extra["RELAY_BATCH_SIZE"] = "5"
    relay.start_worker("one")
    relay.start_worker("two")
    extra = f"{relay.config.schedule_id}-extra"
    relay.temporal(
        "workflow",
        "start",
        "--type",
        "OrderEventsRelay",
        "--task-queue",
        relay.config.task_queue,
        "--workflow-id",
        extra,
        "--input",
        '{"interval_seconds": 30, "batch_size": 5, "lanes": 3, "run_seconds": 30}',
    )
    running = f"WorkflowId STARTS_WITH '{relay.config.schedule_id}' AND ExecutionStatus = 'Running'"
    wait_until(
        lambda: len(relay.list_workflows(running)) == 2,
        what="the scheduled run and the extra run to be relaying side by side",
    )

    products = [catalog.products[name] for name in ("af1", "dunk", "samba")]
    orders = [(f"c-{n}", order_body((products[n % 3], 1))) for n in range(40)]
    assert {response.status_code for response in place_concurrently(api_url, orders)} == {201}
    rows = wait_for_statuses(db, "SENT", timeout=60)

    assert len(rows) == 40
    assert [event["deliveries"] for event in sink.received()] == [1] * 40
    assert all(len(attempts_of(db, row["event_id"])) == 1 for row in rows)
    runs = {attempts_of(db, row["event_id"])[0]["workflow_id"] for row in rows}
    assert extra in runs and len(runs) >= 2, runs  # both relays delivered


def test_orders_are_accepted_while_temporal_is_down_and_delivered_once_it_is_back(
    api, db, catalog, sink, relay, background, tmp_path
):
    port = free_port()
    database = str(tmp_path / "temporal.db")

    def start_temporal() -> WorkflowEnvironment:
        return start_dev_server(background, port=port, dev_server_database_filename=database)

    temporal = start_temporal()
    relay.config.temporal_address = f"127.0.0.1:{port}"
    relay.start_worker()
    place_orders(api, catalog, 1)
    wait_for_statuses(db, "SENT")

    background.run(temporal.shutdown())
    try:
        during_outage = place_orders(api, catalog, 3)
        assert all(order["status"] == "CREATED" for order in during_outage)
        # Every event is written; none is lost or refused. (An activity already running when Temporal went
        # down may still claim and deliver some within its window: that only delivers them sooner.)
        statuses = Counter(row["status"] for row in event_rows(db))
        assert sum(statuses.values()) == 4 and statuses.keys() <= {"PENDING", "PROCESSING", "SENT"}
    finally:
        temporal = start_temporal()
    try:
        wait_for_statuses(db, "SENT", timeout=90)
        assert_every_event_arrived_without_gaps(db, sink)
    finally:
        relay.stop_all()
        background.run(temporal.shutdown())
