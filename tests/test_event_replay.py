"""Replay for a platform that lost data: retained SENT events are delivered again, same ids, in sequence per order."""

import pytest

from tests.support.admin import ADMIN
from tests.support.lifecycle_builders import actions_of, event_ids_of, place_order
from tests.support.outbox_views import attempts_of, wait_for_statuses
from tests.support.payments import pay
from tests.support.polling import wait_until


def delivered_twice(sink, order) -> list[dict] | None:
    received = sink.received(str(order["order_id"]))
    return received if received and all(event["deliveries"] == 2 for event in received) else None


@pytest.mark.parametrize("through", ["cli", "api"])
def test_replay_redelivers_an_orders_retained_events_in_sequence_with_their_original_ids(
    api, db, catalog, sink, relay, cli, through
):
    relay.start_worker()
    order, other = place_order(api, catalog), place_order(api, catalog, customer="c-2")
    assert pay(api, order).status_code == 200
    wait_for_statuses(db, "SENT")
    event_ids = event_ids_of(db, order["order_id"])
    first_time = {event["key"]: event["body"] for event in sink.received(str(order["order_id"]))}

    if through == "cli":
        assert cli("events", "replay", "--order-id", str(order["order_id"]))[0] == 0
    else:
        answer = api.post("/events/replay", json={"order_id": order["order_id"]}, headers=ADMIN)
        assert answer.json()["event_ids"] == event_ids

    received = wait_until(lambda: delivered_twice(sink, order), timeout=30, what="both events delivered again")
    wait_for_statuses(db, "SENT")
    assert [event["key"] for event in received] == event_ids
    assert {event["key"]: event["body"] for event in received} == first_time
    again = [attempts_of(db, event_id)[-1] for event_id in event_ids]
    assert [(attempt["attempt_number"], attempt["outcome"]) for attempt in again] == [(2, "SENT"), (2, "SENT")]
    assert again[0]["attempted_at"] < again[1]["attempted_at"], "sequence 2 went again only after sequence 1"
    assert [event["deliveries"] for event in sink.received(str(other["order_id"]))] == [1]
    assert sink.stats()["gaps"] == []
    assert all(actions_of(db, event_id)[0][0] == "REPLAY" for event_id in event_ids)
