"""Re-running deliveries from the `temporal` CLI: ReplayOrderEvents and RedriveEvents, as an operator starts them."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.lifecycle_builders import actions_of, event_ids_of, place_order
from tests.support.outbox_fill import insert_events
from tests.support.outbox_views import platform_accepts_others, wait_for_statuses
from tests.support.payments import pay
from tests.support.polling import wait_until
from workflows.event_reruns import BATCH_SIZE, EVENT_IDS_REPORTED
from workflows.rerun_requests import InvalidRerunRequest, RerunSelection, parse_rerun_request

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def start(relay, workflow_type: str, given: dict) -> str:
    """`temporal workflow start --type workflow_type --input given` on the test's task queue; the workflow id."""
    workflow_id = f"{workflow_type}-{uuid.uuid4().hex[:8]}"
    relay.temporal(
        "workflow", "start", "--task-queue", relay.config.task_queue, "--type", workflow_type,
        "--workflow-id", workflow_id, "--input", json.dumps(given),
    )  # fmt: skip
    return workflow_id


def described(relay, workflow_id: str) -> dict:
    return json.loads(relay.temporal("workflow", "describe", "--workflow-id", workflow_id, "-o", "json"))


def test_a_replay_started_with_the_temporal_cli_delivers_the_orders_events_again_with_their_ids_audited(
    api, db, catalog, sink, relay
):
    relay.start_worker()
    order, other = place_order(api, catalog), place_order(api, catalog, customer="c-2")
    assert pay(api, order).status_code == 200
    wait_for_statuses(db, "SENT")
    event_ids = event_ids_of(db, order["order_id"])
    first_time = {event["key"]: event["body"] for event in sink.received(str(order["order_id"]))}

    workflow_id = start(relay, "ReplayOrderEvents", {"order_id": str(order["order_id"])})

    def delivered_twice() -> list[dict] | None:
        received = sink.received(str(order["order_id"]))
        return received if received and all(event["deliveries"] == 2 for event in received) else None

    received = wait_until(delivered_twice, timeout=30, what="the order's events delivered again")
    assert [event["key"] for event in received] == event_ids
    assert {event["key"]: event["body"] for event in received} == first_time
    assert [event["deliveries"] for event in sink.received(str(other["order_id"]))] == [1]
    assert all(actions_of(db, event_id) == [("REPLAY", f"temporal:{workflow_id}", "SENT")] for event_id in event_ids)
    report = result_of(relay, workflow_id)
    assert (report["action"], report["events"], report["event_ids"]) == ("REPLAY", 2, event_ids)
    [listed] = relay.list_workflows(f"WorkflowType = 'ReplayOrderEvents' AND WorkflowId = '{workflow_id}'")
    assert listed["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


def test_redrive_events_started_with_the_temporal_cli_delivers_a_failed_event_with_its_id_audited(
    api, db, catalog, sink, relay
):
    sink.set_faults(fail_next=[400])
    platform_accepts_others(db)  # the 4xx is the event's own, FAILED at once
    relay.start_worker()
    order = place_order(api, catalog)
    [failed] = wait_for_statuses(db, "FAILED")
    assert sink.received() == []

    workflow_id = start(relay, "RedriveEvents", {"event_id": str(failed["event_id"])})

    [received] = sink.wait_for_events(1)
    assert received["key"] == str(failed["event_id"]) and received["body"]["aggregate_id"] == str(order["order_id"])
    wait_for_statuses(db, "SENT")
    assert actions_of(db, str(failed["event_id"])) == [("REDRIVE", f"temporal:{workflow_id}", "FAILED")]
    assert result_of(relay, workflow_id)["events"] == 1
    assert relay.list_workflows(f"WorkflowType = 'RedriveEvents' AND WorkflowId = '{workflow_id}'")


def test_an_unknown_destination_fails_the_run_at_once_and_changes_nothing(api, db, catalog, sink, relay):
    relay.start_worker()
    order = place_order(api, catalog)
    [sent] = wait_for_statuses(db, "SENT")

    workflow_id = start(relay, "ReplayOrderEvents", {"order_id": str(order["order_id"]), "destination": "warehouse"})

    failure = wait_until(lambda: failure_of(relay, workflow_id), timeout=30, what="the run to fail")
    assert "unknown destination 'warehouse'" in failure["message"] and "platform" in failure["message"]
    assert failure["applicationFailureInfo"]["type"] == "DestinationNotFound"
    assert failure["applicationFailureInfo"]["nonRetryable"] is True
    assert actions_of(db, str(sent["event_id"])) == []
    assert [event["deliveries"] for event in sink.received()] == [1]


def test_a_replay_of_a_time_range_works_in_bounded_batches_and_audits_every_event(db, catalog, sink, relay):
    insert_events(db, BATCH_SIZE + 1, status="SENT", age=timedelta(hours=1))
    relay.start_worker()

    workflow_id = start(relay, "ReplayOrderEvents", {"since": "2h"})

    report = result_of(relay, workflow_id)  # waits for the run to end
    assert report["events"] == BATCH_SIZE + 1 and len(report["event_ids"]) == EVENT_IDS_REPORTED
    assert f"{BATCH_SIZE + 1:,} SENT events queued for delivery again in 2 batches" in report["summary"]
    [(audited,)] = db.execute(
        "SELECT count(DISTINCT event_id) FROM operator_actions WHERE action = 'REPLAY' AND requested_by = %s",
        (f"temporal:{workflow_id}",),
    ).fetchall()
    assert audited == BATCH_SIZE + 1
    sink.wait_for_events(BATCH_SIZE + 1, timeout=60)


def result_of(relay, workflow_id: str) -> dict:
    """What the run returned (`temporal workflow result` waits for it to complete)."""
    return json.loads(relay.temporal("workflow", "result", "--workflow-id", workflow_id, "-o", "json"))["result"]


def failure_of(relay, workflow_id: str) -> dict | None:
    """The run's failure, from its history (`temporal workflow show`); None while it has not failed."""
    history = json.loads(relay.temporal("workflow", "show", "--workflow-id", workflow_id, "-o", "json"))
    for event in history["events"]:
        if "workflowExecutionFailedEventAttributes" in event:
            return event["workflowExecutionFailedEventAttributes"]["failure"]
    return None


def test_a_re_run_takes_the_order_id_as_digits_or_a_number():
    for given in ({"order_id": "42"}, {"order_id": 42}):
        assert parse_rerun_request(given, NOW, all_failed_allowed=False) == RerunSelection(order_id=42)


def test_a_re_run_reads_since_and_until_as_iso_times_or_ages():
    selection = parse_rerun_request({"since": "2h", "until": "2026-12-03T14:30:00"}, NOW, all_failed_allowed=False)

    assert selection.since == NOW - timedelta(hours=2)
    assert selection.until == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert parse_rerun_request(selection.as_input(), NOW + timedelta(days=1), all_failed_allowed=False) == selection


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({}, "name the events"),
        ({"order_id": "42", "untill": "1h"}, "unknown field(s) untill"),
        ({"order_id": "4x"}, "order_id is an order's id"),
        ({"event_id": "3f2a"}, "event_id is an event's whole id"),
        ({"since": "yesterday"}, "since is an ISO 8601 time or an age"),
        ({"until": "1h"}, "until needs since"),
        ({"order_id": "42", "destination": "a crm"}, "destination is a destination's name"),
        ({"order_id": "42", "destination": 7}, "destination is a destination's name"),
        ({"all_failed": True}, "unknown field(s) all_failed"),
    ],
)
def test_a_replay_request_that_cannot_be_read_is_refused_whole(given, refusal):
    with pytest.raises(InvalidRerunRequest, match=re.escape(refusal)):
        parse_rerun_request(given, NOW, all_failed_allowed=False)


def test_a_redrive_may_take_every_failed_event_but_only_when_asked_alone():
    assert parse_rerun_request({"all_failed": True}, NOW, all_failed_allowed=True).all_failed
    with pytest.raises(InvalidRerunRequest, match="not both"):
        parse_rerun_request({"all_failed": True, "order_id": "1"}, NOW, all_failed_allowed=True)


def test_a_re_run_takes_any_destination_by_name_the_activities_check_it_is_configured():
    selection = parse_rerun_request({"order_id": "42", "destination": "crm"}, NOW, all_failed_allowed=False)

    assert selection.destination == "crm" and selection.as_input()["destination"] == "crm"
    assert parse_rerun_request({"order_id": "42"}, NOW, all_failed_allowed=False).destination == "platform"
