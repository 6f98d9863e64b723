"""Retention: events every configured destination has had SENT for longer than OUTBOX_RETENTION_DAYS go with their
deliveries and attempts, in bounded batches; nothing else does."""

import asyncio
import logging
import statistics
import threading
import time
from datetime import timedelta

import httpx
import psycopg
import pytest

from db.engine import create_engine
from db.outbox.retention import RetentionBatch, delete_sent_events_past_retention
from tests.support.lifecycle_builders import event_ids_of, make_sent, place_order, status_of
from tests.support.ordering import place
from tests.support.outbox_fill import SYNTHETIC_ORDER_IDS, count_events, insert_events
from tests.support.outbox_views import add_destination, remove_destination
from tests.support.payments import pay
from tests.support.polling import wait_until

log = logging.getLogger(__name__)

SEVEN_DAYS = 7 * 86400
OLD = timedelta(days=8)


def delete_in_batches(database_url, batch: RetentionBatch) -> list:
    """Run retention batches until one deletes nothing; what each batch deleted."""

    async def run():
        engine = create_engine(database_url, pool_size=1)
        try:
            batches = []
            while (deleted := await delete_sent_events_past_retention(engine, batch)).events:
                batches.append(deleted)
            return batches
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_only_sent_events_past_retention_go_and_their_attempts_with_them(api, db, catalog, database_url):
    unpaid = place_order(api, catalog)
    paid = place_order(api, catalog)
    pay(api, paid)
    for event_id in event_ids_of(db, unpaid["order_id"]) + event_ids_of(db, paid["order_id"]):
        db.execute("UPDATE order_events SET created_at = now() - %s WHERE event_id = %s", (OLD, event_id))
        make_sent(db, event_id, sent_ago=OLD)
    insert_events(db, 5, status="SENT", age=OLD)
    insert_events(db, 3, status="SENT", age=timedelta(days=6), first_order_id=SYNTHETIC_ORDER_IDS + 100)
    for offset, status in enumerate(("PENDING", "PROCESSING", "FAILED")):
        insert_events(
            db, 2, status=status, age=timedelta(days=30), first_order_id=SYNTHETIC_ORDER_IDS + 200 + offset * 10
        )

    batches = delete_in_batches(database_url, RetentionBatch(SEVEN_DAYS, max_events=1000, max_rows=5000))

    assert sum(batch.events for batch in batches) == 5 + 2  # the synthetic ones and the paid order's two
    assert sum(batch.attempts for batch in batches) == 5 + 2
    assert sum(batch.deliveries for batch in batches) == 5 + 2
    assert event_ids_of(db, paid["order_id"]) == []
    [kept] = event_ids_of(db, unpaid["order_id"])  # its order is still CREATED: it carries the next sequence
    assert status_of(db, kept) == "SENT"
    remaining = db.execute("SELECT status, count(*) FROM event_deliveries GROUP BY status ORDER BY status").fetchall()
    assert remaining == [("FAILED", 2), ("PENDING", 2), ("PROCESSING", 2), ("SENT", 3 + 1)]
    orphans = db.execute(
        "SELECT count(*) FROM delivery_attempts WHERE event_id NOT IN (SELECT event_id FROM order_events)"
    ).fetchone()[0]
    assert orphans == 0


def test_each_batch_stays_within_its_row_bound_and_an_event_with_many_attempts_goes_alone(db, catalog, database_url):
    insert_events(db, 20, status="SENT", age=OLD)
    insert_events(
        db, 1, status="SENT", age=timedelta(days=9), attempts_each=30, first_order_id=SYNTHETIC_ORDER_IDS + 50
    )

    batches = delete_in_batches(database_url, RetentionBatch(SEVEN_DAYS, max_events=100, max_rows=15))

    # Each event is three rows (itself, its delivery, its attempt); the one with 30 attempts is 32.
    assert [(batch.events, batch.attempts) for batch in batches] == [(1, 30)] + [(5, 5)] * 4
    assert max(batch.rows for batch in batches[1:]) == 15
    assert count_events(db, "SENT") == 0


def test_an_event_stays_until_every_configured_destination_has_had_it_sent_past_retention(db, catalog, database_url):
    add_destination(db, "crm")
    insert_events(db, 3, status="SENT", age=OLD)  # sent to platform 8 days ago; crm's deliveries still PENDING
    batch = RetentionBatch(SEVEN_DAYS, max_events=100, max_rows=1000)

    assert delete_in_batches(database_url, batch) == []
    db.execute(
        "UPDATE event_deliveries SET status = 'SENT', sent_at = now() - interval '1 day' WHERE destination = 'crm'"
    )
    assert delete_in_batches(database_url, batch) == []  # crm got them only yesterday
    db.execute("UPDATE event_deliveries SET sent_at = now() - interval '8 days' WHERE destination = 'crm'")
    batches = delete_in_batches(database_url, batch)

    assert [(b.events, b.deliveries, b.attempts) for b in batches] == [(3, 6, 3)]
    assert db.execute("SELECT count(*) FROM event_deliveries").fetchone()[0] == 0


def test_a_failed_delivery_to_one_destination_keeps_the_event(db, catalog, database_url):
    add_destination(db, "crm")
    insert_events(db, 2, status="SENT", age=OLD)
    db.execute(
        "UPDATE event_deliveries SET status = 'FAILED' WHERE destination = 'crm' AND aggregate_id = %s",
        (str(SYNTHETIC_ORDER_IDS),),
    )
    db.execute(
        "UPDATE event_deliveries SET status = 'SENT', sent_at = now() - interval '8 days'"
        " WHERE destination = 'crm' AND aggregate_id = %s",
        (str(SYNTHETIC_ORDER_IDS + 1),),
    )

    batches = delete_in_batches(database_url, RetentionBatch(SEVEN_DAYS, max_events=100, max_rows=1000))

    assert [(b.events, b.deliveries) for b in batches] == [(1, 2)]  # only the event both had SENT long ago
    kept = db.execute("SELECT aggregate_id FROM order_events WHERE aggregate_id = %s", (str(SYNTHETIC_ORDER_IDS),))
    assert kept.fetchall() == [(str(SYNTHETIC_ORDER_IDS),)]


def test_a_removed_destination_no_longer_holds_retention_back(db, catalog, database_url):
    add_destination(db, "crm")
    insert_events(db, 4, status="SENT", age=OLD)  # crm never got them
    remove_destination(db, "crm")

    batches = delete_in_batches(database_url, RetentionBatch(SEVEN_DAYS, max_events=100, max_rows=1000))

    assert [(b.events, b.deliveries) for b in batches] == [(4, 8)]  # crm's PENDING deliveries go with them
    assert count_events(db, "PENDING", "crm") == 0


def test_a_delivery_replayed_after_retention_chose_its_event_keeps_the_event(db, catalog, database_url):
    insert_events(db, 1, status="SENT", age=OLD)
    with psycopg.connect(db.info.dsn, password=db.info.password) as replay:
        replay.execute("SELECT FROM event_deliveries FOR UPDATE")  # an operator's replay, not yet committed

        batches = delete_in_batches(database_url, RetentionBatch(SEVEN_DAYS, max_events=100, max_rows=1000))

        replay.execute("UPDATE event_deliveries SET status = 'PENDING', sent_at = NULL")
    assert batches == []
    assert count_events(db, "PENDING") == 1


def run_result(relay, background, temporal, schedule_id: str, timeout: float = 300) -> dict:
    """Trigger the schedule and wait for its run (following continue-as-new) to finish; the result."""
    before = describe(relay, schedule_id)["info"].get("recentActions", [])
    relay.temporal("schedule", "trigger", "--schedule-id", schedule_id)

    def started():
        actions = describe(relay, schedule_id)["info"].get("recentActions", [])
        return actions[-1] if len(actions) > len(before) else None

    action = wait_until(started, timeout=30, what="the triggered run to start")
    workflow_id = action["startWorkflowResult"]["workflowId"]
    return background.run(temporal.client.get_workflow_handle(workflow_id).result(), timeout=timeout)


def describe(relay, schedule_id: str) -> dict:
    return relay.describe_schedule(schedule_id)


class OrderTraffic:
    """Orders placed one after another through the API on a thread, each one timed."""

    def __init__(self, api_url: str, product_id: int) -> None:
        self._client = httpx.Client(base_url=api_url, timeout=30)
        self._product_id = product_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._place, daemon=True)
        self.timings: list[tuple[float, float, int]] = []  # (start, seconds, status)

    def _place(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            # A customer per order: the unpaid-orders limit is not under test here.
            began = time.monotonic()
            status = place(self._client, (self._product_id, 1), customer=f"traffic-{number}").status_code
            self.timings.append((began, time.monotonic() - began, status))

    def __enter__(self) -> "OrderTraffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for began, seconds, _ in self.timings if start <= began and began + seconds <= end]


def percentiles(seconds: list[float]) -> str:
    cuts = statistics.quantiles(seconds, n=100)
    return f"{len(seconds)} orders, p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms"


@pytest.mark.heavy  # a bar on speed under load: at most two such tests at once (tests/support/scheduling.py)
def test_100000_old_sent_events_go_in_bounded_batches_while_orders_keep_flowing(
    api_url, db, catalog, sink, relay, temporal, background
):
    db.execute("UPDATE products SET stock = 1000000 WHERE id = %s", (catalog.products["af1"],))
    insert_events(db, 99_900, status="SENT", age=OLD)
    insert_events(db, 100, status="SENT", age=OLD, attempts_each=12, first_order_id=SYNTHETIC_ORDER_IDS + 200_000)
    for offset, status in enumerate(("PENDING", "PROCESSING", "FAILED")):
        insert_events(db, 100, status=status, age=OLD, first_order_id=SYNTHETIC_ORDER_IDS + 300_000 + offset * 1000)
    relay.start_worker()

    with OrderTraffic(api_url, catalog.products["af1"]) as traffic:
        time.sleep(3)  # the baseline: orders placed before retention runs
        retention_began = time.monotonic()
        result = run_result(relay, background, temporal, relay.config.retention_schedule_id)
        retention_ended = time.monotonic()
    baseline = traffic.between(0, retention_began)
    during = traffic.between(retention_began, retention_ended)
    log.warning("orders before retention: %s", percentiles(baseline))
    log.warning("orders during retention (%.1f s): %s", retention_ended - retention_began, percentiles(during))
    log.warning("retention: %s", result["summary"])

    totals = result["totals"]
    assert (totals["events_deleted"], totals["attempts_deleted"]) == (100_000, 99_900 + 100 * 12)
    assert totals["largest_batch_rows"] <= 5000 and totals["event_batches"] >= 100
    assert result["stopped_because"] == "nothing more is past retention"
    synthetic = db.execute(
        "SELECT status, count(*) FROM event_deliveries WHERE aggregate_id::bigint >= %s GROUP BY status"
        " ORDER BY status",
        (SYNTHETIC_ORDER_IDS,),
    ).fetchall()
    assert synthetic == [("FAILED", 100), ("PENDING", 100), ("PROCESSING", 100)]
    assert {status for _, _, status in traffic.timings} == {201}
    assert len(during) > 0
    # The relay kept claiming and delivering the new orders' events all along.
    wait_until(
        lambda: (
            not db.execute(
                "SELECT count(*) FROM event_deliveries WHERE status <> 'SENT' AND aggregate_id::bigint < %s",
                (SYNTHETIC_ORDER_IDS,),
            ).fetchone()[0]
        ),
        timeout=60,
        what="every placed order's event to be delivered",
    )


def test_a_paused_retention_schedule_deletes_nothing_and_says_so(db, catalog, sink, relay, temporal, background):
    relay.start_worker()
    insert_events(db, 10, status="SENT", age=OLD)
    schedule_id = relay.config.retention_schedule_id
    relay.temporal("schedule", "toggle", "--schedule-id", schedule_id, "--pause", "--reason", "audit in progress")

    result = run_result(relay, background, temporal, schedule_id)

    assert result["stopped_because"] == "the schedule is paused"
    assert result["totals"]["events_deleted"] == 0 and count_events(db, "SENT") == 10
    assert "Deleted 0 SENT events" in result["summary"]


def test_pausing_the_schedule_stops_a_running_retention_within_two_seconds(
    db, catalog, sink, relay, temporal, background
):
    insert_events(db, 60_000, status="SENT", age=OLD)
    relay.start_worker()
    schedule_id = relay.config.retention_schedule_id
    before = describe(relay, schedule_id)["info"].get("recentActions", [])
    relay.temporal("schedule", "trigger", "--schedule-id", schedule_id)
    wait_until(lambda: count_events(db, "SENT") < 55_000, timeout=60, what="retention to be under way")

    relay.temporal("schedule", "toggle", "--schedule-id", schedule_id, "--pause", "--reason", "incident")
    time.sleep(2)  # the promise under test: within two seconds of the pause, nothing more changes
    left = count_events(db, "SENT")
    time.sleep(2)

    assert count_events(db, "SENT") == left > 0
    actions = wait_until(lambda: describe(relay, schedule_id)["info"].get("recentActions", []), timeout=10)
    assert len(actions) > len(before)
    handle = temporal.client.get_workflow_handle(actions[-1]["startWorkflowResult"]["workflowId"])
    result = background.run(handle.result(), timeout=60)
    assert result["stopped_because"] == "the schedule is paused"
    assert result["totals"]["events_deleted"] == 60_000 - left
