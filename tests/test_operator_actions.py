"""Operators act on events through the CLI and the ops API: retry now, replay, discard, redrive; all recorded."""

import uuid
from datetime import timedelta

import pytest

from tests.support.admin import ADMIN
from tests.support.lifecycle_builders import (
    actions_of,
    event_ids_of,
    make_backing_off,
    make_failed,
    make_sent,
    place_order,
    status_of,
)
from tests.support.payments import pay


def due_in_seconds(db, event_id) -> float:
    return db.execute(
        "SELECT extract(epoch FROM next_attempt_at - now()) FROM event_deliveries"
        " WHERE event_id = %s AND destination = 'platform'",
        (event_id,),
    ).fetchone()[0]


def test_retry_now_makes_a_backing_off_event_due_at_once_and_records_it(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_backing_off(db, event_id, due_in=timedelta(minutes=5))

    code, out, _ = cli("events", "retry-now", event_id[:8])

    assert code == 0 and f"retry now {event_id} to platform" in out
    assert due_in_seconds(db, event_id) <= 0
    retries = db.execute("SELECT retry_count FROM event_deliveries").fetchone()[0]
    assert (status_of(db, event_id), retries) == ("PENDING", 1)
    [(action, by, before)] = actions_of(db, event_id)
    assert (action, before) == ("RETRY_NOW", "PENDING") and by.startswith("cli")


def test_retry_now_all_pulls_only_events_waiting_out_a_backoff(api, db, catalog, cli):
    waiting, due, sent = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(3))
    make_backing_off(db, waiting, due_in=timedelta(minutes=5))
    make_sent(db, sent)

    dry = cli("events", "retry-now", "--all", "--dry-run")
    assert due_in_seconds(db, waiting) > 60 and actions_of(db, waiting) == []
    code, out, _ = cli("events", "retry-now", "--all")

    assert dry[0] == 0 and f"would retry now {waiting} to platform" in dry[1]
    assert code == 0 and out.splitlines() == [f"retry now {waiting} to platform", "1 deliveries: retry now"]
    assert due_in_seconds(db, waiting) <= 0
    assert actions_of(db, due) == [] and actions_of(db, sent) == []


def test_retry_now_through_the_api_refuses_an_event_that_is_not_pending(api, db, catalog):
    waiting, sent = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    make_backing_off(db, waiting, due_in=timedelta(minutes=5))
    make_sent(db, sent)

    pulled = api.post(f"/events/{waiting}/retry-now", headers=ADMIN)
    refused = api.post(f"/events/{sent}/retry-now", headers=ADMIN)
    missing = api.post(f"/events/{uuid.uuid4()}/retry-now", headers=ADMIN)

    assert pulled.status_code == 200
    assert [(a["action"], a["requested_by"]) for a in pulled.json()["actions"]] == [("RETRY_NOW", "api")]
    assert (refused.status_code, refused.json()["code"]) == (409, "EVENT_NOT_PENDING")
    assert refused.headers["content-type"] == "application/problem+json"
    assert (missing.status_code, missing.json()["code"]) == (404, "EVENT_NOT_FOUND")


def test_retry_now_all_through_the_api(api, db, catalog):
    [waiting] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_backing_off(db, waiting, due_in=timedelta(minutes=5))

    answer = api.post("/events/retry-now", json={}, headers=ADMIN).json()

    assert answer == {
        "action": "RETRY_NOW",
        "dry_run": False,
        "count": 1,
        "event_ids": [waiting],
        "deliveries": [{"event_id": waiting, "destination": "platform"}],
    }


def test_discard_deletes_a_failed_event_and_keeps_its_record_with_the_attempts(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id)

    code, out, _ = cli("events", "discard", event_id)

    assert code == 0 and f"discard {event_id} to platform" in out
    assert status_of(db, event_id) is None
    assert db.execute("SELECT count(*) FROM order_events").fetchone()[0] == 0  # its only delivery went
    assert db.execute("SELECT count(*) FROM delivery_attempts").fetchone()[0] == 0
    action, destination, details = db.execute(
        "SELECT action, destination, details FROM operator_actions WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert (action, destination) == ("DISCARD", "platform")
    assert (details["event_type"], details["sequence"], details["payload"]["status"]) == ("OrderCreated", 1, "CREATED")
    assert [(a["outcome"], a["http_status"]) for a in details["attempts"]] == [("RETRY", 503), ("FAILED", 422)]
    shown = api.get(f"/events/{event_id}", headers=ADMIN).json()
    assert shown["code"] == "EVENT_NOT_FOUND" and "was discarded" in shown["detail"]


def test_discard_refuses_an_event_that_is_not_failed(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])

    code, _, err = cli("events", "discard", event_id)
    answer = api.post(f"/events/{event_id}/discard", headers=ADMIN)

    assert code == 1 and f"{event_id} is PENDING to platform; only a FAILED delivery can be discarded" in err
    assert (answer.status_code, answer.json()["code"]) == (409, "EVENT_NOT_FAILED")
    assert status_of(db, event_id) == "PENDING" and actions_of(db, event_id) == []


def test_discard_all_failed_older_than_an_age_leaves_younger_and_other_events(api, db, catalog, cli):
    old, young, old_pending = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(3))
    make_failed(db, old, created_ago=timedelta(days=31))
    make_failed(db, young, created_ago=timedelta(days=29))
    db.execute("UPDATE order_events SET created_at = now() - interval '40 days' WHERE event_id = %s", (old_pending,))

    assert cli("events", "discard", "--all-failed")[0] == 2  # an age is required
    dry = cli("events", "discard", "--all-failed", "--older-than", "30d", "--dry-run")
    assert status_of(db, old) == "FAILED"
    code, out, _ = cli("events", "discard", "--all-failed", "--older-than", "30d")

    assert dry[1].splitlines()[0] == f"would discard {old} to platform"
    assert code == 0 and out.splitlines() == [f"discard {old} to platform", "1 deliveries: discard"]
    assert (status_of(db, old), status_of(db, young), status_of(db, old_pending)) == (None, "FAILED", "PENDING")


def test_discard_through_the_api_by_age(api, db, catalog):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id, created_ago=timedelta(hours=2))

    kept = api.post("/events/discard", json={"older_than_seconds": 3 * 3600}, headers=ADMIN).json()
    gone = api.post("/events/discard", json={"older_than_seconds": 3600}, headers=ADMIN).json()
    malformed = api.post("/events/discard", json={"older_than_seconds": "1h"}, headers=ADMIN)

    assert (kept["count"], gone["event_ids"]) == (0, [event_id])
    assert (malformed.status_code, malformed.json()["code"]) == (422, "VALIDATION_ERROR")


def test_a_discarded_event_no_longer_holds_back_the_later_events_of_its_order(api, db, catalog, cli):
    order = place_order(api, catalog)
    pay(api, order)
    created, confirmed = event_ids_of(db, order["order_id"])
    make_failed(db, created)

    cli("events", "discard", created)

    due = db.execute(
        "SELECT event_id FROM event_deliveries AS delivery WHERE status = 'PENDING' AND NOT EXISTS ("
        " SELECT FROM event_deliveries AS earlier WHERE earlier.destination = delivery.destination"
        " AND earlier.aggregate_id = delivery.aggregate_id"
        " AND earlier.sequence < delivery.sequence AND earlier.status <> 'SENT')"
    ).fetchall()
    assert [str(row[0]) for row in due] == [confirmed]


def test_replay_queues_an_orders_sent_events_again_with_the_same_ids(api, db, catalog, cli):
    order, other = place_order(api, catalog), place_order(api, catalog)
    pay(api, order)
    created, confirmed = event_ids_of(db, order["order_id"])
    [other_created] = event_ids_of(db, other["order_id"])
    for event_id in (created, confirmed, other_created):
        make_sent(db, event_id, sent_ago=timedelta(hours=1))

    dry = cli("events", "replay", "--order-id", str(order["order_id"]), "--dry-run")
    assert status_of(db, created) == "SENT"
    code, out, _ = cli("events", "replay", "--order-id", str(order["order_id"]))

    assert dry[1].splitlines() == [
        f"would replay {created} to platform",
        f"would replay {confirmed} to platform",
        "2 deliveries: would replay",
    ]
    assert code == 0 and out.splitlines()[-1] == "2 deliveries: replay"
    rows = db.execute(
        "SELECT event_id::text, status, retry_count, sent_at, next_attempt_at <= now() FROM event_deliveries"
        " WHERE aggregate_id = %s ORDER BY sequence",
        (str(order["order_id"]),),
    ).fetchall()
    assert rows == [(created, "PENDING", 0, None, True), (confirmed, "PENDING", 0, None, True)]
    assert status_of(db, other_created) == "SENT"
    details = db.execute("SELECT details FROM operator_actions WHERE event_id = %s", (created,)).fetchone()[0]
    assert "sent_at_before" in details


def test_replay_by_time_takes_the_events_that_occurred_in_the_window(api, db, catalog):
    before, inside, after = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(3))
    for event_id, hours_ago in ((before, 5), (inside, 3), (after, 1)):
        db.execute(
            "UPDATE order_events SET created_at = now() - make_interval(hours => %s) WHERE event_id = %s",
            (hours_ago, event_id),
        )
        make_sent(db, event_id)
    window = db.execute("SELECT now() - interval '4 hours', now() - interval '2 hours'").fetchone()

    answer = api.post(
        "/events/replay", json={"since": window[0].isoformat(), "until": window[1].isoformat()}, headers=ADMIN
    )

    assert answer.status_code == 200 and answer.json()["event_ids"] == [inside]
    assert [status_of(db, e) for e in (before, inside, after)] == ["SENT", "PENDING", "SENT"]
    assert actions_of(db, inside) == [("REPLAY", "api", "SENT")]


def test_replay_leaves_events_that_are_not_sent(api, db, catalog, cli):
    failed, pending = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    make_failed(db, failed)

    code, out, _ = cli("events", "replay", "--since", "1h")

    assert code == 0 and out.splitlines() == ["0 deliveries: replay"]
    assert (status_of(db, failed), status_of(db, pending)) == ("FAILED", "PENDING")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"until": "2030-01-01T00:00:00Z"},
        {"order_id": "1"},
        {"order_id": 1, "surprise": True},
        {"since": "soon"},
        {"since": 0},
        {"order_id": 1, "dry_run": "yes"},
    ],
)
def test_a_replay_that_selects_nothing_clearly_is_refused(api, catalog, body):
    answer = api.post("/events/replay", json=body, headers=ADMIN)

    assert (answer.status_code, answer.json()["code"]) == (422, "VALIDATION_ERROR")


def test_a_body_that_cannot_be_read_is_a_400_problem(api, catalog):
    answer = api.post("/events/replay", content=b"\xff\xfe{", headers=ADMIN | {"Content-Type": "application/json"})

    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"


def test_redrives_are_recorded_as_operator_actions_and_still_listed_as_redrives(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id)

    assert cli("events", "redrive", event_id[:13])[0] == 0

    detail = api.get(f"/events/{event_id}", headers=ADMIN).json()
    assert [(a["action"], a["status_before"], a["retry_count_before"]) for a in detail["actions"]] == [
        ("REDRIVE", "FAILED", 2)
    ]
    assert [r["retry_count_before"] for r in detail["redrives"]] == [2]


def test_bulk_redrive_through_the_api(api, db, catalog):
    mine, other = (place_order(api, catalog) for _ in range(2))
    for order in (mine, other):
        make_failed(db, event_ids_of(db, order["order_id"])[0])

    answer = api.post("/events/redrive", json={"order_id": mine["order_id"], "dry_run": False}, headers=ADMIN)

    assert answer.json()["event_ids"] == event_ids_of(db, mine["order_id"])
    assert status_of(db, event_ids_of(db, other["order_id"])[0]) == "FAILED"


# A fixed id: test ids must be the same in every pytest-xdist worker.
ANY_EVENT_ID = "6f1c2a7e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/events/redrive"),
        ("POST", "/events/retry-now"),
        ("POST", "/events/replay"),
        ("POST", "/events/discard"),
        ("POST", f"/events/{ANY_EVENT_ID}/retry-now"),
        ("POST", f"/events/{ANY_EVENT_ID}/discard"),
    ],
)
def test_the_new_ops_endpoints_need_the_admin_token(api, catalog, method, path):
    answer = api.request(method, path, json={})

    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")


def test_the_openapi_schema_documents_the_operations_with_their_problems(api):
    paths = api.get("/openapi.json").json()["paths"]

    for path, status in (
        ("/events/{event_id}/retry-now", "409"),
        ("/events/{event_id}/discard", "409"),
        ("/events/replay", "422"),
        ("/events/discard", "422"),
        ("/events/retry-now", "401"),
        ("/events/redrive", "401"),
    ):
        response = paths[path]["post"]["responses"][status]
        assert "application/problem+json" in response["content"], (path, status)
