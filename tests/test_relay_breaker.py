"""An outage is the platform's, not the events': attempts are held, one probe at a time, the backlog drains at once."""

import time
from datetime import UTC, datetime, timedelta

from tests.support.admin import ADMIN
from tests.support.outbox_views import attempts_of, event_rows, insert_pending_events, wait_for_statuses
from tests.support.polling import wait_until

OUTAGE_SECONDS = 30


def running_relay_run(relay) -> str:
    """The workflow id of the schedule's run in progress."""
    query = f"TemporalScheduledById = '{relay.config.schedule_id}' AND ExecutionStatus = 'Running'"
    runs = wait_until(
        lambda: relay.list_workflows(query),
        what="a running relay run",
    )
    return runs[0]["execution"]["workflowId"]


def test_an_outage_fails_no_event_and_the_backlog_drains_within_seconds_of_the_platforms_return(
    db, catalog, sink, relay, cli
):
    relay.config.extra.update(
        {"RELAY_MAX_ATTEMPTS": "3", "RELAY_BACKOFF_BASE_SECONDS": "5", "RELAY_BACKOFF_MAX_SECONDS": "300"}
    )
    sink.set_faults(down=True)
    worker = relay.start_worker()
    insert_pending_events(db, [f"before-{number}" for number in range(5)])

    outage_ends = time.monotonic() + OUTAGE_SECONDS
    for number in range(OUTAGE_SECONDS * 10):  # orders keep coming while the platform is down
        if time.monotonic() >= outage_ends:
            break
        insert_pending_events(db, [f"during-{number}"])
        assert "FAILED" not in {row["status"] for row in event_rows(db)}
        time.sleep(1)

    # The outage shows: in the worker's metrics, in `sneaker-orders events list`, and on the run's page.
    assert f'sneaker_orders_relay_breaker_open{{platform="{sink.url}"}} 1.0' in worker.metrics()
    code, out, _ = cli("events", "list", "--limit", "1")
    assert code == 0
    assert "breaker OPEN since" in out
    details = relay.temporal("workflow", "metadata", "--workflow-id", running_relay_run(relay))
    assert "breaker OPEN" in details

    sink.set_faults()
    back = datetime.now(UTC)
    rows = wait_for_statuses(db, "SENT", timeout=15)

    assert max(row["sent_at"] for row in rows) - back < timedelta(seconds=5)
    assert max(row["retry_count"] for row in rows) < 3
    outcomes = {attempt["outcome"] for row in rows for attempt in attempts_of(db, row["event_id"])}
    assert "HELD" in outcomes and "FAILED" not in outcomes
    assert sink.stats()["received"] == len(rows)
    assert f'sneaker_orders_relay_breaker_open{{platform="{sink.url}"}} 0.0' in worker.metrics()


def test_while_the_breaker_is_open_two_workers_probe_one_request_at_a_time(db, catalog, sink, relay):
    sink.set_faults(down=True)
    relay.start_worker("one")
    relay.start_worker("two")
    insert_pending_events(db, [f"order-{number}" for number in range(20)])
    wait_until(
        lambda: any(a["outcome"] == "HELD" for r in event_rows(db) for a in attempts_of(db, r["event_id"])),
        timeout=20,
        what="the breaker to open",
    )

    before = sink.stats()["requests"]
    time.sleep(5)  # ten probe intervals of the test relay (0.5 s)
    probes = sink.stats()["requests"] - before

    assert 1 <= probes <= 12
    assert {row["status"] for row in event_rows(db)} <= {"PENDING", "PROCESSING"}


def test_a_held_attempt_shows_in_the_ops_api_as_held(api, db, catalog):
    [event_id] = insert_pending_events(db, ["1"])
    db.execute(
        "INSERT INTO delivery_attempts (event_id, attempt_number, attempted_at, outcome, error)"
        " VALUES (%s, 1, now(), 'HELD', 'held, not counted (the platform fails for every event): no answer')",
        (event_id,),
    )

    response = api.get(f"/events/{event_id}", headers=ADMIN)

    assert response.status_code == 200
    assert [(a["outcome"], a["error"][:4]) for a in response.json()["attempts"]] == [("HELD", "held")]
