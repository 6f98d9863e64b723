"""Operators: pause and resume the relay with the `temporal` CLI, redrive FAILED events, find the runs."""

from tests.support.admin import ADMIN
from tests.support.ordering import placed
from tests.support.outbox_views import attempts_of, event_rows, platform_accepts_others, wait_for_statuses
from tests.support.payments import pay
from tests.support.polling import holds_for, wait_until


def place(api, catalog):
    return placed(api, (catalog.products["af1"], 1))


def describe_schedule(relay) -> dict:
    return relay.describe_schedule(relay.config.schedule_id)


def test_a_paused_schedule_changes_no_event_and_unpausing_drains_them(api, db, catalog, sink, relay):
    relay.start_worker()
    relay.temporal(
        "schedule", "toggle", "--schedule-id", relay.config.schedule_id, "--pause", "--reason", "platform maintenance"
    )
    wait_until(lambda: not describe_schedule(relay)["info"].get("runningWorkflows"), what="the last run to finish")

    for _ in range(3):
        place(api, catalog)

    def all_pending() -> None:
        assert {row["status"] for row in event_rows(db)} == {"PENDING"}

    holds_for(all_pending, 3)  # three schedule intervals of the test relay
    assert describe_schedule(relay)["schedule"]["state"]["notes"] == "platform maintenance"

    relay.temporal("schedule", "toggle", "--schedule-id", relay.config.schedule_id, "--unpause", "--reason", "back")

    assert len(wait_for_statuses(db, "SENT")) == 3


def test_a_trigger_runs_the_relay_now(api, db, catalog, sink, relay):
    relay.config.extra["RELAY_INTERVAL_SECONDS"] = "3600"  # no tick during the test: only the trigger starts a run
    relay.start_worker()
    assert not describe_schedule(relay)["info"].get("runningWorkflows")
    place(api, catalog)

    relay.temporal("schedule", "trigger", "--schedule-id", relay.config.schedule_id)

    [event] = wait_for_statuses(db, "SENT")
    runs = relay.temporal("workflow", "list", "-q", f"TemporalScheduledById='{relay.config.schedule_id}'", "-o", "json")
    assert attempts_of(db, event["event_id"])[0]["workflow_id"] in runs


def test_a_restarted_worker_keeps_the_schedule_paused_with_its_note(relay, sink):
    first = relay.start_worker()
    relay.temporal(
        "schedule", "toggle", "--schedule-id", relay.config.schedule_id, "--pause", "--reason", "incident 42"
    )
    first.stop()

    relay.start_worker("restarted")

    state = describe_schedule(relay)["schedule"]["state"]
    assert (state.get("paused"), state.get("notes")) == (True, "incident 42")
    schedule = describe_schedule(relay)["schedule"]
    assert schedule["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_SKIP"
    assert schedule["spec"]["interval"] == [{"interval": "1s"}]  # RELAY_INTERVAL_SECONDS of the test relay
    assert schedule["action"]["startWorkflow"]["taskQueue"]["name"] == relay.config.task_queue


def test_a_failed_event_is_redriven_through_the_api_and_then_sent(api, db, catalog, sink, relay):
    sink.set_faults(fail_next=[400])
    platform_accepts_others(db)
    relay.start_worker()
    place(api, catalog)
    [failed] = wait_for_statuses(db, "FAILED")

    response = api.post(f"/events/{failed['event_id']}/redrive", headers=ADMIN)

    assert response.status_code == 200
    # The relay may already have claimed it again by the time the answer is written.
    assert response.json()["status"] in ("PENDING", "PROCESSING", "SENT")
    assert len(response.json()["redrives"]) == 1
    [sent] = wait_for_statuses(db, "SENT")
    detail = api.get(f"/events/{sent['event_id']}", headers=ADMIN).json()
    assert [(a["attempt_number"], a["outcome"]) for a in detail["attempts"]] == [(1, "FAILED"), (2, "SENT")]
    assert all(
        a["temporal_ui_url"].startswith("http://127.0.0.1:8233/namespaces/default/workflows/")
        for a in detail["attempts"]
    )
    assert [(r["requested_by"], r["retry_count_before"]) for r in detail["redrives"]] == [("api", 1)]


def test_a_blocked_order_resumes_in_order_after_its_failed_event_is_redriven(api, db, catalog, sink, relay, cli):
    sink.set_faults(fail_next=[400])
    platform_accepts_others(db)
    relay.start_worker()
    order = place(api, catalog)
    pay(api, order, payment_id="p")
    wait_until(
        lambda: {r["sequence"]: r["status"] for r in event_rows(db)} == {1: "FAILED", 2: "PENDING"},
        what="OrderCreated failed and OrderConfirmed held back",
    )

    assert cli("events", "redrive", "--order-id", str(order["order_id"]), "--dry-run")[0] == 0
    assert {r["sequence"]: r["status"] for r in event_rows(db)} == {1: "FAILED", 2: "PENDING"}
    assert cli("events", "redrive", "--order-id", str(order["order_id"]))[0] == 0

    wait_for_statuses(db, "SENT")
    assert [r["body"]["sequence"] for r in sink.received(str(order["order_id"]))] == [1, 2]


def test_only_a_failed_event_can_be_redriven(api, db, catalog, sink, relay):
    relay.start_worker()
    place(api, catalog)
    [sent] = wait_for_statuses(db, "SENT")

    response = api.post(f"/events/{sent['event_id']}/redrive", headers=ADMIN)

    assert (response.status_code, response.json()["code"]) == (409, "EVENT_NOT_FAILED")
