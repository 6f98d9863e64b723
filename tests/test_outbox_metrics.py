"""The API's outbox metrics tell the truth, per destination: the lag counts deliveries in backoff, FAILED ones are
counted, and a scrape reads a few index pages however many events were ever sent."""

import json
import time
from datetime import timedelta

import httpx
import pytest

from tests.support.admin import ADMIN
from tests.support.customers import customer_headers
from tests.support.ordering import placed
from tests.support.outbox_fill import SYNTHETIC_ORDER_IDS, insert_events
from tests.support.outbox_views import add_destination, platform_accepts_others, remove_destination, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.prometheus_text import sample


@pytest.fixture
def api(api_with):
    """A client of an API whose outbox gauges are read at every scrape, so that each scrape shows the truth now."""
    with httpx.Client(
        base_url=api_with(metrics_outbox_interval_seconds=0), timeout=30, headers=customer_headers()
    ) as client:
        yield client


def outbox_gauges(api, destination: str = "platform") -> dict[str, float]:
    """The outbox gauges of one destination."""
    text = api.get("/metrics").text
    return {
        "lag": sample(text, "sneaker_orders_outbox_lag_seconds", destination=destination),
        "oldest_due": sample(text, "sneaker_orders_outbox_oldest_due_seconds", destination=destination),
        "read_ok": sample(text, "sneaker_orders_outbox_read_ok"),
        **{
            status: sample(text, "sneaker_orders_outbox_events", destination=destination, status=status)
            for status in ("PENDING", "PROCESSING", "FAILED", "SENT")
        },
    }


def test_events_waiting_out_a_backoff_count_in_the_lag(api, db, catalog):
    insert_events(db, 3, status="PENDING", age=timedelta(minutes=10))  # each due again only in a day

    gauges = outbox_gauges(api)

    assert 600 <= gauges["lag"] < 620
    assert gauges["oldest_due"] == 0  # none is due: what the oldest-due gauge alone showed
    assert (gauges["PENDING"], gauges["PROCESSING"], gauges["FAILED"], gauges["read_ok"]) == (3, 0, 0, 1)
    assert gauges["SENT"] is None  # never counted


def test_the_lag_grows_while_the_platform_is_down(api, db, catalog, sink, relay):
    sink.set_faults(down=True)
    relay.start_worker()
    for _ in range(3):
        placed(api, (catalog.products["af1"], 1))
    wait_until(
        lambda: db.execute("SELECT count(DISTINCT event_id) FROM delivery_attempts").fetchone()[0] == 3,
        timeout=30,
        what="every event to have been attempted",
    )
    first = outbox_gauges(api)
    started = time.monotonic()

    later = wait_until(
        lambda: (gauges := outbox_gauges(api))["lag"] >= first["lag"] + 2 and gauges,
        timeout=30,
        what="the lag to grow by two seconds",
    )

    assert later["lag"] <= first["lag"] + (time.monotonic() - started) + 1  # it grows as time does, no faster
    assert later["PENDING"] + later["PROCESSING"] == 3
    sink.set_faults()
    wait_for_statuses(db, "SENT")
    wait_until(lambda: outbox_gauges(api)["lag"] == 0, what="the lag back to 0 once all is delivered")


def test_the_failed_count_moves_with_failures_and_redrives(api, db, catalog, sink, relay):
    sink.set_faults(fail_next=[400])
    platform_accepts_others(db)  # the 4xx is the event's own, FAILED at once
    relay.start_worker()
    placed(api, (catalog.products["af1"], 1))
    [failed] = wait_for_statuses(db, "FAILED")

    assert wait_until(lambda: outbox_gauges(api)["FAILED"] == 1, what="one FAILED event counted")

    assert api.post(f"/events/{failed['event_id']}/redrive", headers=ADMIN).status_code == 200
    wait_for_statuses(db, "SENT")
    gauges = outbox_gauges(api)
    assert (gauges["FAILED"], gauges["PENDING"], gauges["lag"]) == (0, 0, 0)


def plan_of(db, statement: str, parameters: dict) -> dict:
    [[plan]] = db.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters).fetchall()
    return plan[0]["Plan"]


def nodes_of(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes_of(child)


def test_a_scrape_reads_a_few_index_pages_whatever_the_number_of_sent_events(api, db, catalog):
    from db.outbox.operations import HEALTH_COUNT_CAP, OUTBOX_HEALTH

    insert_events(db, 200_000, status="SENT", age=timedelta(days=1))
    insert_events(db, 5, status="PENDING", age=timedelta(minutes=1), first_order_id=20_000_000)
    insert_events(db, 2, status="FAILED", age=timedelta(minutes=1), first_order_id=30_000_000)
    add_destination(db, "crm")  # a second destination, with deliveries of none of these events
    db.execute("VACUUM ANALYZE order_events")
    db.execute("VACUUM ANALYZE event_deliveries")

    plan = plan_of(db, OUTBOX_HEALTH.text.replace(":cap", "%(cap)s"), {"cap": HEALTH_COUNT_CAP})

    outbox = ("order_events", "event_deliveries")
    scans = {node["Node Type"] for node in nodes_of(plan) if node.get("Relation Name") in outbox}
    assert scans <= {"Index Scan", "Index Only Scan"}, json.dumps(plan, indent=1)
    pages = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    assert pages < 100, f"a scrape read {pages} pages:\n{json.dumps(plan, indent=1)}"
    # What the scrape replaced, a count of every delivery by destination and status, reads the whole table.
    whole = plan_of(db, "SELECT destination, status, count(*) FROM event_deliveries GROUP BY 1, 2", {})
    assert whole["Shared Hit Blocks"] + whole["Shared Read Blocks"] > 20 * pages
    gauges = outbox_gauges(api)
    assert (gauges["PENDING"], gauges["FAILED"]) == (5, 2)
    assert outbox_gauges(api, "crm")["PENDING"] == 0


def test_the_gauges_are_labelled_by_destination_and_a_removed_destination_leaves_them(api, db, catalog):
    add_destination(db, "crm")
    insert_events(db, 3, status="PENDING", age=timedelta(minutes=10))  # crm's deliveries: PENDING, due at once
    db.execute(
        "UPDATE event_deliveries SET status = 'FAILED' WHERE destination = 'crm' AND aggregate_id = %s",
        (str(SYNTHETIC_ORDER_IDS),),
    )

    platform, crm = outbox_gauges(api), outbox_gauges(api, "crm")

    assert (platform["PENDING"], platform["FAILED"], platform["oldest_due"]) == (3, 0, 0)
    assert (crm["PENDING"], crm["FAILED"]) == (2, 1)
    assert 600 <= crm["lag"] < 620 and 600 <= crm["oldest_due"] < 620  # due since the events were written
    remove_destination(db, "crm")
    assert outbox_gauges(api, "crm")["PENDING"] is None
    assert outbox_gauges(api)["PENDING"] == 3
