"""Unpaid orders expire through the Temporal schedule ORDER_EXPIRY_SCHEDULE_ID, run by real `sneaker-orders worker`s."""

import uuid

import httpx
import pytest

from api.app import create_app
from tests.support.catalog import events_of, stock_of, used_count_of
from tests.support.customers import customer_headers
from tests.support.lifecycle_builders import place_order
from tests.support.payments import pay
from tests.support.polling import holds_for, wait_until
from tests.support.ports import free_port
from tests.support.serving import serve
from tests.support.temporal_server import start_dev_server

PAYMENT_TTL_SECONDS = 2


@pytest.fixture(scope="module")
def short_ttl_api_url(settings):
    """The API with a payment deadline of PAYMENT_TTL_SECONDS."""
    with serve(create_app(settings.model_copy(update={"order_payment_ttl_seconds": PAYMENT_TTL_SECONDS}))) as url:
        yield url


@pytest.fixture
def shop(short_ttl_api_url):
    with httpx.Client(base_url=short_ttl_api_url, timeout=30, headers=customer_headers("c-1")) as client:
        yield client


def status_of(shop, order) -> str:
    return shop.get(f"/orders/{order['order_id']}").json()["status"]


def wait_for_status(shop, order, status: str, timeout: float = 30) -> dict:
    def reached():
        current = shop.get(f"/orders/{order['order_id']}").json()
        return current if current["status"] == status else None

    return wait_until(reached, timeout=timeout, what=f"order {order['order_id']} to be {status}")


def stays(shop, orders, status: str, seconds: float) -> None:
    """Assert that every order keeps `status` for `seconds`."""

    def kept() -> None:
        assert [status_of(shop, order) for order in orders] == [status] * len(orders)

    holds_for(kept, seconds, interval=0.2)


def expiry_runs_naming(relay, order) -> list[dict]:
    """This test's expiry runs whose OrderIds search attribute names the order (as `temporal workflow list` shows them).

    Order ids restart at 1 in every test, so the query keeps to this test's schedule.
    """
    query = f"OrderIds = '{order['order_id']}' AND TemporalScheduledById = '{relay.config.expiry_schedule_id}'"
    return relay.list_workflows(query)


def expiry_schedule(relay) -> dict:
    return relay.describe_schedule(relay.config.expiry_schedule_id)


def toggle_expiry(relay, *flags: str) -> None:
    relay.temporal("schedule", "toggle", "--schedule-id", relay.config.expiry_schedule_id, *flags, "--reason", "test")


def test_an_unpaid_order_expires_after_its_deadline_and_the_platform_hears_it_next(shop, db, catalog, sink, relay):
    stock_before = stock_of(db, catalog.products["af1"])
    relay.start_worker()
    order = place_order(shop, catalog, quantity=2, coupon="five_uses")
    assert stock_of(db, catalog.products["af1"]) == stock_before - 2

    expired = wait_for_status(shop, order, "EXPIRED")

    assert expired["expired_at"] >= order["expires_at"]
    assert stock_of(db, catalog.products["af1"]) == stock_before
    assert used_count_of(db, catalog.coupons["five_uses"]) == 0
    received = sink.wait_for_events(2, aggregate_id=str(order["order_id"]))
    assert [(r["body"]["event_type"], r["body"]["sequence"]) for r in received] == [
        ("OrderCreated", 1),
        ("OrderExpired", 2),
    ]
    assert received[1]["body"]["payload"] == expired
    assert [event["event_id"] for event in events_of(db, order["order_id"])] == [uuid.UUID(r["key"]) for r in received]


def test_a_paid_order_never_expires(shop, db, catalog, sink, relay):
    relay.start_worker()
    paid = place_order(shop, catalog)
    assert pay(shop, paid).status_code == 200
    unpaid = place_order(shop, catalog)

    wait_for_status(shop, unpaid, "EXPIRED")  # expiry ran after the paid order's deadline too

    assert status_of(shop, paid) == "CONFIRMED"
    assert [event["event_type"] for event in events_of(db, paid["order_id"])] == ["OrderCreated", "OrderConfirmed"]


def test_the_run_that_expired_orders_names_them_in_a_search_attribute_and_in_words(
    shop, db, catalog, relay, temporal, background
):
    relay.config.extra["ORDER_EXPIRY_INTERVAL_SECONDS"] = "3600"  # only the trigger below runs it
    relay.start_worker()
    orders = [place_order(shop, catalog) for _ in range(2)]
    stays(shop, orders, "CREATED", PAYMENT_TTL_SECONDS + 1)

    relay.temporal("schedule", "trigger", "--schedule-id", relay.config.expiry_schedule_id)

    for order in orders:
        wait_for_status(shop, order, "EXPIRED")
    [run] = wait_until(lambda: expiry_runs_naming(relay, orders[0]), what="the run to be listed by OrderIds")
    assert run["execution"]["workflowId"].startswith(f"{relay.config.expiry_schedule_id}-run")
    assert expiry_runs_naming(relay, orders[1]) == [run]
    handle = temporal.client.get_workflow_handle(run["execution"]["workflowId"], run_id=run["execution"]["runId"])
    report = background.run(handle.result())
    assert sorted(report["expired_order_ids"]) == sorted(order["order_id"] for order in orders)
    assert report["summary"].startswith("Expired 2 unpaid orders past their payment deadline")
    assert all(str(order["order_id"]) in report["summary"] for order in orders)


def test_while_the_schedule_is_paused_nothing_expires_and_on_unpause_the_overdue_orders_do(shop, db, catalog, relay):
    relay.start_worker()
    toggle_expiry(relay, "--pause")
    wait_until(lambda: not expiry_schedule(relay)["info"].get("runningWorkflows"), what="the last run to finish")
    orders = [place_order(shop, catalog) for _ in range(2)]

    stays(shop, orders, "CREATED", PAYMENT_TTL_SECONDS + 2)  # two expiry intervals past the deadline
    relay.temporal("schedule", "trigger", "--schedule-id", relay.config.expiry_schedule_id)  # a run, but paused
    stays(shop, orders, "CREATED", 2)
    toggle_expiry(relay, "--unpause")

    for order in orders:
        wait_for_status(shop, order, "EXPIRED")


def test_expiry_is_late_but_not_lost_while_the_worker_is_down(shop, db, catalog, relay):
    relay.start_worker("before").stop()
    order = place_order(shop, catalog)

    stays(shop, [order], "CREATED", PAYMENT_TTL_SECONDS + 2)
    relay.start_worker("after")

    wait_for_status(shop, order, "EXPIRED")


def test_expiry_is_late_but_not_lost_while_temporal_is_down(shop, db, catalog, relay, background, tmp_path):
    port = free_port()
    database = str(tmp_path / "temporal.db")

    def start_temporal():
        return start_dev_server(background, port=port, dev_server_database_filename=database)

    temporal = start_temporal()
    relay.config.temporal_address = f"127.0.0.1:{port}"
    relay.start_worker()
    background.run(temporal.shutdown())
    try:
        order = place_order(shop, catalog)
        stays(shop, [order], "CREATED", PAYMENT_TTL_SECONDS + 2)
    finally:
        temporal = start_temporal()
    try:
        wait_for_status(shop, order, "EXPIRED", timeout=90)
    finally:
        relay.stop_all()
        background.run(temporal.shutdown())
