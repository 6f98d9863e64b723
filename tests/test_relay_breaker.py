"""An outage is the platform's, not the events': attempts are held, one probe at a time, the backlog drains at once."""

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.rows import dict_row

from tests.support.admin import ADMIN
from tests.support.outbox_views import attempts_of, event_rows, insert_pending_events, wait_for_statuses
from tests.support.polling import holds_for, wait_until

OUTAGE_SECONDS = 30

pytestmark = pytest.mark.heavy  # bars on drain speed and timing under load: at most two such tests at once


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
    assert 'sneaker_orders_relay_breaker_open{destination="platform"} 1.0' in worker.metrics()
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
    assert 'sneaker_orders_relay_breaker_open{destination="platform"} 0.0' in worker.metrics()


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
        "INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, error)"
        " VALUES (%s, 'platform', 1, now(), 'HELD',"
        " 'held, not counted (the platform fails for every event): no answer')",
        (event_id,),
    )

    response = api.get(f"/events/{event_id}", headers=ADMIN)

    assert response.status_code == 200
    assert [(a["outcome"], a["error"][:4]) for a in response.json()["attempts"]] == [("HELD", "held")]


def breaker_row(db, platform: str) -> dict | None:
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute("SELECT * FROM relay_breakers WHERE destination = %s", (platform,)).fetchone()


def paced(seconds: float, per_second: int, act) -> None:
    """Call `act(tick)` ten times a second for `seconds`, each tick for a tenth of `per_second` events."""
    started = time.monotonic()
    for tick in range(int(seconds * 10)):
        act(tick, per_second // 10)
        time.sleep(max(0.0, started + (tick + 1) / 10 - time.monotonic()))


def test_retry_after_is_a_floor_for_every_event_while_the_breaker_opens_and_closes(db, catalog, sink, relay):
    relay.config.extra["RELAY_BACKOFF_MAX_SECONDS"] = "10"
    events = insert_pending_events(db, [f"order-{number}" for number in range(10)])
    sink.set_faults(fail_next=[429] * 10, retry_after="3")
    relay.start_worker()

    wait_for_statuses(db, "SENT", timeout=30)

    for event_id in events:
        first, second, *_ = attempts_of(db, event_id)
        assert first["http_status"] == 429
        assert second["attempted_at"] - first["attempted_at"] >= timedelta(seconds=3)
    assert "HELD" in {attempts_of(db, event_id)[0]["outcome"] for event_id in events}  # the breaker opened
    breaker = breaker_row(db, "platform")
    assert breaker["state"] == "CLOSED" and breaker["open_seconds_total"] >= 2.9  # the probe waited 3 s too


def test_a_fifth_of_answers_503_for_a_minute_at_100_events_a_second_never_opens_the_breaker(db, catalog, sink, relay):
    relay.config.extra["RELAY_MAX_ATTEMPTS"] = "10"
    sink.set_faults(fail_rate=0.2, fail_statuses=[503])
    relay.start_worker()

    def tick(number: int, count: int) -> None:
        insert_pending_events(db, [f"order-{number}-{index}" for index in range(count)])
        assert breaker_row(db, "platform") is None or breaker_row(db, "platform")["state"] == "CLOSED"

    paced(60, 100, tick)
    sink.set_faults()
    rows = wait_for_statuses(db, "SENT", timeout=120)

    assert len(rows) == 6000
    assert breaker_row(db, "platform")["open_seconds_total"] == 0
    held = db.execute("SELECT count(*) FROM delivery_attempts WHERE outcome IN ('HELD', 'FAILED')").fetchone()[0]
    retried = db.execute("SELECT count(*) FROM delivery_attempts WHERE outcome = 'RETRY'").fetchone()[0]
    assert held == 0 and retried > 600


@pytest.mark.flaky(reruns=2)  # a latency bar two xdist workers on two cores can miss: re-run, never loosened
def test_a_full_outage_opens_the_breaker_within_two_seconds_and_late_answers_do_not_close_it(db, catalog, sink, relay):
    relay.config.extra.update({"RELAY_BATCH_SIZE": "10", "RELAY_LANES": "4"})  # slow requests hold up no claim
    relay.start_worker()
    paced(1, 100, lambda tick, count: insert_pending_events(db, [f"healthy-{tick}-{n}" for n in range(count)]))
    sink.set_faults(delay_ms=1800)  # requests sent now are answered 201, late
    paced(0.3, 100, lambda tick, count: insert_pending_events(db, [f"slow-{tick}-{n}" for n in range(count)]))
    sink.set_faults(down=True, delay_ms=1800)  # the outage: later requests get no answer
    down = datetime.now(UTC)
    # Orders keep coming during the outage (had they stopped after half a second, the few events written would
    # have spent their attempts while the late answers still came, and nothing would be left to fail).
    paced(2.5, 100, lambda tick, count: insert_pending_events(db, [f"down-{tick}-{n}" for n in range(count)]))

    opened = wait_until(lambda: breaker_row(db, "platform")["opened_at"], timeout=5, what="the breaker to open")
    assert opened - down <= timedelta(seconds=2)

    def late_answers_arrive_and_it_stays_open() -> None:
        assert breaker_row(db, "platform")["state"] == "OPEN"

    holds_for(late_answers_arrive_and_it_stays_open, 3)
    late = db.execute(
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'SENT'"
        " AND attempted_at < %s AND attempted_at + duration_ms * interval '1 millisecond' > %s",
        (opened, opened),
    ).fetchone()[0]
    assert late > 0  # answers to requests sent before it opened came after it opened, and it stayed open


@pytest.mark.flaky(reruns=2)  # a latency bar two xdist workers on two cores can miss: re-run, never loosened
def test_after_a_minute_of_outage_8000_waiting_events_are_delivered_within_10_s_without_a_stall(
    db, catalog, sink, relay
):
    sink.set_faults(down=True)
    relay.start_worker()
    paced(60, 140, lambda tick, count: insert_pending_events(db, [f"order-{tick}-{n}" for n in range(count)]))
    assert breaker_row(db, "platform")["state"] == "OPEN"
    waiting = len(event_rows(db))
    assert waiting >= 8000

    sink.set_faults()
    back = time.time()
    wait_for_statuses(db, "SENT", timeout=30)

    arrivals = sorted(event["received_at"] for event in sink.received())
    stalls = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    seen = f"first after {arrivals[0] - back:.2f} s, last after {arrivals[-1] - back:.2f} s, stall {max(stalls):.2f} s"
    assert len(arrivals) == waiting
    assert arrivals[-1] - back <= 10, seen
    assert max(stalls) <= 0.5, seen


def test_a_platform_answering_404_to_everything_for_8_s_fails_no_event(db, catalog, sink, relay):
    relay.start_worker()
    paced(1, 20, lambda tick, count: insert_pending_events(db, [f"before-{tick}-{n}" for n in range(count)]))
    sink.set_faults(fail_rate=1.0, fail_statuses=[404])  # a maintenance page
    paced(8, 20, lambda tick, count: insert_pending_events(db, [f"during-{tick}-{n}" for n in range(count)]))
    sink.set_faults()

    rows = wait_for_statuses(db, "SENT", timeout=30)

    assert {row["retry_count"] for row in rows} == {0}
    outcomes = {tuple(row) for row in db.execute("SELECT DISTINCT outcome, http_status FROM delivery_attempts")}
    assert ("HELD", 404) in outcomes and not {outcome for outcome, _ in outcomes} & {"FAILED", "RETRY"}
    assert breaker_row(db, "platform")["open_seconds_total"] > 0
