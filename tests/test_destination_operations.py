"""Operators see and act on each destination's deliveries on their own: list, show, redrive, retry now, replay,
discard per destination, and a destination added later gets earlier events only through `replay --destination`."""

import re
from datetime import timedelta

import pytest

from tests.support.admin import ADMIN
from tests.support.lifecycle_builders import (
    actions_of,
    event_ids_of,
    log_attempt,
    make_backing_off,
    make_failed,
    make_sent,
    place_order,
    status_of,
)
from tests.support.outbox_views import add_destination, remove_destination
from tests.support.payments import pay


@pytest.fixture
def crm(db, catalog) -> str:
    """A second destination, `crm`, configured before the test's orders are placed."""
    add_destination(db, "crm")
    return "crm"


def deliveries_of(db, event_id) -> dict[str, str]:
    rows = db.execute("SELECT destination, status FROM event_deliveries WHERE event_id = %s", (event_id,)).fetchall()
    return dict(rows)


def test_each_new_event_gets_a_delivery_per_destination_and_list_shows_each(api, db, catalog, cli, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_sent(db, event_id)

    code, out, _ = cli("events", "list")
    only_crm = cli("events", "list", "--destination", "crm")[1]
    listed = api.get("/events", headers=ADMIN).json()
    pending = api.get("/events", params={"status": "PENDING"}, headers=ADMIN).json()

    assert deliveries_of(db, event_id) == {"platform": "SENT", "crm": "PENDING"}
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith(event_id)]
    assert code == 0 and [(row[4], row[5]) for row in rows] == [("crm", "PENDING"), ("platform", "SENT")]
    assert [line.split()[4] for line in only_crm.splitlines()[1:] if line.startswith(event_id)] == ["crm"]
    assert [(e["event_id"], e["destination"], e["status"]) for e in listed] == [
        (event_id, "crm", "PENDING"),
        (event_id, "platform", "SENT"),
    ]
    assert [e["destination"] for e in pending] == ["crm"]


def test_a_destination_that_takes_some_event_types_gets_only_those(api, db, catalog):
    add_destination(db, "warehouse", ["OrderConfirmed"])
    order = place_order(api, catalog)
    pay(api, order)
    created, confirmed = event_ids_of(db, order["order_id"])

    listed = api.get("/events", params={"destination": "warehouse"}, headers=ADMIN).json()

    assert [e["event_id"] for e in listed] == [confirmed]
    assert deliveries_of(db, created) == {"platform": "PENDING"}


def test_show_prints_each_destinations_delivery_and_every_attempt_with_its_destination(api, db, catalog, cli, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_sent(db, event_id, destination="platform")
    make_failed(db, event_id, destination="crm")

    code, out, _ = cli("events", "show", event_id)
    crm_only = cli("events", "show", event_id, "--destination", "crm")[1]

    lines = out.splitlines()
    assert code == 0 and lines[2] == "status     FAILED: waits for an operator (redrive or discard)"
    shown = lines[lines.index("deliveries") + 1 : lines.index("deliveries") + 4]
    assert shown[0].split()[:2] == ["crm", "FAILED:"] and shown[1].strip() == "last error HTTP 422"
    assert shown[2].split()[:3] == ["platform", "SENT", "at"]
    attempts = [line.split() for line in lines if line.startswith("  #")]
    assert sorted((a[0], a[2], a[3]) for a in attempts) == [
        ("#1", "crm", "RETRY"),
        ("#1", "platform", "SENT"),
        ("#2", "crm", "FAILED"),
    ]
    assert "attempts   3, 2 failed" in lines
    assert "status     FAILED: waits for an operator (redrive or discard)  (to crm)" in crm_only.splitlines()
    assert "attempts   2, 2 failed" in crm_only.splitlines()


def test_the_api_shows_the_deliveries_the_overall_state_and_one_destinations_state(api, db, catalog, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_sent(db, event_id, destination="platform")
    make_backing_off(db, event_id, due_in=timedelta(minutes=5), destination="crm")

    overall = api.get(f"/events/{event_id}", headers=ADMIN).json()
    platform = api.get(f"/events/{event_id}", params={"destination": "platform"}, headers=ADMIN).json()

    assert (overall["destination"], overall["status"], overall["retry_count"], overall["sent_at"]) == (
        None,
        "PENDING",
        1,
        None,
    )
    assert [(d["destination"], d["status"], d["retry_count"]) for d in overall["deliveries"]] == [
        ("crm", "PENDING", 1),
        ("platform", "SENT", 0),
    ]
    assert sorted((a["destination"], a["outcome"]) for a in overall["attempts"]) == [
        ("crm", "RETRY"),
        ("platform", "SENT"),
    ]
    assert (platform["destination"], platform["status"], platform["retry_count"]) == ("platform", "SENT", 0)
    assert platform["sent_at"] is not None


def test_once_every_delivery_is_sent_the_event_is_sent_at_the_last_one(api, db, catalog, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_sent(db, event_id, sent_ago=timedelta(minutes=2), destination="platform")
    make_sent(db, event_id, sent_ago=timedelta(minutes=1), destination="crm")

    detail = api.get(f"/events/{event_id}", headers=ADMIN).json()

    sent = {d["destination"]: d["sent_at"] for d in detail["deliveries"]}
    assert detail["status"] == "SENT" and detail["sent_at"] == max(sent.values()) == sent["crm"]


def test_redrive_of_one_destination_leaves_the_others_delivery_failed(api, db, catalog, cli, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id, destination="platform")
    make_failed(db, event_id, destination="crm")

    code, out, _ = cli("events", "redrive", event_id, "--destination", "crm")

    assert code == 0 and out.splitlines() == [f"redrive {event_id} to crm", "1 deliveries: redrive"]
    assert deliveries_of(db, event_id) == {"platform": "FAILED", "crm": "PENDING"}
    assert actions_of(db, event_id, "crm") == [("REDRIVE", actions_of(db, event_id, "crm")[0][1], "FAILED")]
    assert actions_of(db, event_id, "platform") == []
    again = cli("events", "redrive", event_id, "--destination", "crm")
    assert again[0] == 1 and f"{event_id} is PENDING to crm; only a FAILED delivery can be redriven" in again[2]


def test_redrive_through_the_api_per_destination_and_for_every_destination(api, db, catalog, crm):
    first, second = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    for event_id in (first, second):
        make_failed(db, event_id, destination="platform")
        make_failed(db, event_id, destination="crm")

    one = api.post(f"/events/{first}/redrive", params={"destination": "platform"}, headers=ADMIN)
    bulk = api.post("/events/redrive", params={"destination": "crm"}, json={}, headers=ADMIN).json()
    refused = api.post(f"/events/{first}/redrive", headers=ADMIN)
    every = api.post(f"/events/{second}/redrive", headers=ADMIN).json()

    assert one.status_code == 200 and one.json()["status"] == "PENDING" and one.json()["destination"] == "platform"
    assert [d["status"] for d in one.json()["deliveries"]] == ["FAILED", "PENDING"]  # crm, platform
    assert (bulk["count"], bulk["event_ids"]) == (2, [first, second])
    assert {d["destination"] for d in bulk["deliveries"]} == {"crm"}
    assert (refused.status_code, refused.json()["code"]) == (409, "EVENT_NOT_FAILED")
    assert "PENDING to crm, PENDING to platform" in refused.json()["detail"]
    assert every["status"] == "PENDING" and [a["destination"] for a in every["actions"]] == ["crm", "platform"]
    assert [r["destination"] for r in every["redrives"]] == ["crm", "platform"]


def test_retry_now_of_one_destination(api, db, catalog, cli, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    for destination in ("platform", "crm"):
        make_backing_off(db, event_id, due_in=timedelta(minutes=5), destination=destination)

    code, out, _ = cli("events", "retry-now", "--all", "--destination", "platform")

    assert code == 0 and out.splitlines() == [f"retry now {event_id} to platform", "1 deliveries: retry now"]
    due = dict(
        db.execute(
            "SELECT destination, next_attempt_at <= now() FROM event_deliveries WHERE event_id = %s", (event_id,)
        ).fetchall()
    )
    assert due == {"platform": True, "crm": False}


def test_replay_to_a_destination_added_later_creates_its_deliveries_from_the_chosen_point(api, db, catalog, cli):
    before, inside = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    for event_id, hours_ago in ((before, 5), (inside, 3)):
        db.execute(
            "UPDATE order_events SET created_at = now() - make_interval(hours => %s) WHERE event_id = %s",
            (hours_ago, event_id),
        )
        make_sent(db, event_id)
    add_destination(db, "crm")
    [after] = event_ids_of(db, place_order(api, catalog)["order_id"])
    assert (status_of(db, inside, "crm"), status_of(db, after, "crm")) == (None, "PENDING")

    everywhere = cli("events", "replay", "--since", "4h")  # no destination named: never a delivery created
    assert everywhere[1].splitlines() == [f"replay {inside} to platform", "1 deliveries: replay"]
    dry = cli("events", "replay", "--since", "4h", "--destination", "crm", "--dry-run")
    assert status_of(db, inside, "crm") is None
    code, out, _ = cli("events", "replay", "--since", "4h", "--destination", "crm")

    assert dry[1].splitlines()[-1] == "1 deliveries: would replay"
    assert code == 0 and out.splitlines() == [f"replay {inside} to crm", "1 deliveries: replay"]
    assert [status_of(db, event_id, "crm") for event_id in (before, inside, after)] == [None, "PENDING", "PENDING"]
    assert status_of(db, before, "platform") == "SENT"
    [(action, _, status_before)] = actions_of(db, inside, "crm")
    assert (action, status_before) == ("REPLAY", "NONE")
    detail = api.get(f"/events/{inside}", headers=ADMIN).json()
    assert [(a["destination"], a["status_before"]) for a in detail["actions"]] == [
        ("platform", "SENT"),
        ("crm", "NONE"),
    ]
    assert "crm" in cli("events", "show", inside)[1] and "had no delivery" in cli("events", "show", inside)[1]


def test_replay_to_a_destination_through_the_api_requeues_its_sent_deliveries_only(api, db, catalog, crm):
    order = place_order(api, catalog)
    [event_id] = event_ids_of(db, order["order_id"])
    make_sent(db, event_id, destination="platform")
    make_sent(db, event_id, destination="crm")

    answer = api.post(
        "/events/replay", params={"destination": "crm"}, json={"order_id": order["order_id"]}, headers=ADMIN
    ).json()

    assert answer["deliveries"] == [{"event_id": event_id, "destination": "crm"}]
    assert deliveries_of(db, event_id) == {"platform": "SENT", "crm": "PENDING"}
    assert actions_of(db, event_id, "crm") == [("REPLAY", "api", "SENT")]


def test_discard_of_one_destination_keeps_the_event_for_the_others_until_its_last_delivery_goes(
    api, db, catalog, cli, crm
):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id, destination="platform")
    make_failed(db, event_id, destination="crm")

    code, out, _ = cli("events", "discard", event_id, "--destination", "crm")

    assert code == 0 and out.splitlines() == [f"discard {event_id} to crm", "1 deliveries: discard"]
    assert deliveries_of(db, event_id) == {"platform": "FAILED"}
    assert [row[0] for row in db.execute("SELECT destination FROM delivery_attempts").fetchall()] == [
        "platform",
        "platform",
    ]
    [details] = db.execute("SELECT details FROM operator_actions WHERE destination = 'crm'").fetchone()
    assert [a["destination"] for a in details["attempts"]] == ["crm", "crm"]
    shown = api.get(f"/events/{event_id}", headers=ADMIN).json()
    assert [a["action"] for a in shown["actions"]] == ["DISCARD"] and shown["status"] == "FAILED"

    answer = api.post(f"/events/{event_id}/discard", headers=ADMIN).json()

    assert answer["deliveries"] == [{"event_id": event_id, "destination": "platform"}]
    assert db.execute("SELECT count(*) FROM order_events").fetchone()[0] == 0
    gone = api.get(f"/events/{event_id}", headers=ADMIN).json()
    assert gone["code"] == "EVENT_NOT_FOUND" and "was discarded" in gone["detail"]


def test_an_unknown_destination_is_a_clear_error_everywhere(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id)

    for arguments in (
        ("list",),
        ("show", event_id),
        ("redrive", event_id),
        ("retry-now", "--all"),
        ("replay", "--since", "1h"),
        ("discard", event_id),
    ):
        code, out, err = cli("events", *arguments, "--destination", "warehouse")
        assert code == 1 and out == "", arguments
        assert err.strip() == "unknown destination 'warehouse'; destinations: platform", arguments
    for method, path, body in (
        ("GET", "/events", None),
        ("GET", f"/events/{event_id}", None),
        ("POST", f"/events/{event_id}/redrive", None),
        ("POST", f"/events/{event_id}/retry-now", None),
        ("POST", f"/events/{event_id}/discard", None),
        ("POST", "/events/redrive", {}),
        ("POST", "/events/retry-now", {}),
        ("POST", "/events/replay", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", "/events/discard", {"older_than_seconds": 0}),
    ):
        answer = api.request(method, path, params={"destination": "warehouse"}, json=body, headers=ADMIN)
        assert (answer.status_code, answer.json()["code"]) == (404, "DESTINATION_NOT_FOUND"), path
        assert answer.headers["content-type"] == "application/problem+json"
    assert status_of(db, event_id) == "FAILED" and actions_of(db, event_id) == []


def test_a_removed_destination_takes_no_new_events_and_no_replay_but_its_past_stays_visible(api, db, catalog, cli, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_sent(db, event_id, destination="crm")
    remove_destination(db, "crm")
    [later] = event_ids_of(db, place_order(api, catalog)["order_id"])

    code, _, err = cli("events", "replay", "--since", "1h", "--destination", "crm")
    retried = cli("events", "retry-now", "--all", "--destination", "crm")
    discarded = cli("events", "discard", "--all-failed", "--older-than", "0s", "--destination", "crm")

    assert code == 1 and "destination 'crm' was removed from the configuration" in err
    assert retried[0] == 1 and "destination 'crm' was removed from the configuration" in retried[2]
    assert discarded[:2] == (0, "0 deliveries: discard\n")  # a removed destination's FAILED ones may be cleared
    assert deliveries_of(db, later) == {"platform": "PENDING"}
    assert status_of(db, event_id, "crm") == "SENT"
    assert [e["event_id"] for e in api.get("/events", params={"destination": "crm"}, headers=ADMIN).json()] == [
        event_id
    ]


def test_an_event_a_destination_has_no_delivery_of_is_404_for_that_destination(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    add_destination(db, "crm")

    answer = api.get(f"/events/{event_id}", params={"destination": "crm"}, headers=ADMIN)
    redrive = api.post(f"/events/{event_id}/redrive", params={"destination": "crm"}, headers=ADMIN)
    code, _, err = cli("events", "show", event_id, "--destination", "crm")

    assert (answer.status_code, answer.json()["code"]) == (404, "DELIVERY_NOT_FOUND")
    assert (redrive.status_code, redrive.json()["code"]) == (404, "DELIVERY_NOT_FOUND")
    assert code == 1 and re.fullmatch(rf"event {event_id} has no delivery to crm\n", err)


def test_attempt_numbers_count_per_destination(api, db, catalog, crm):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    log_attempt(db, event_id, "RETRY", 503, timedelta(seconds=3), "platform")
    log_attempt(db, event_id, "RETRY", 503, timedelta(seconds=2), "crm")
    log_attempt(db, event_id, "SENT", 201, timedelta(seconds=1), "platform")

    attempts = api.get(f"/events/{event_id}", headers=ADMIN).json()["attempts"]

    assert [(a["destination"], a["attempt_number"]) for a in attempts] == [("platform", 1), ("crm", 1), ("platform", 2)]
