"""The relay end to end: orders placed through the API reach the platform through Temporal."""

import itertools
import uuid
from datetime import datetime

from tests.support.ordering import placed
from tests.support.outbox_views import attempts_of, event_rows, insert_pending_events, wait_for_statuses
from tests.support.payments import pay
from tests.support.polling import wait_until


def place(api, catalog, product="af1", quantity=1):
    return placed(api, (catalog.products[product], quantity))


def test_a_placed_order_reaches_the_platform_once_with_its_key_and_body(api, db, catalog, sink, relay):
    relay.start_worker()
    order = place(api, catalog)

    [event] = wait_for_statuses(db, "SENT")
    [received] = sink.wait_for_events(1)

    assert received["key"] == str(event["event_id"]) == received["body"]["event_id"]
    assert received["deliveries"] == 1
    body = received["body"]
    assert {key: body[key] for key in ("event_type", "aggregate_type", "aggregate_id", "sequence")} == {
        "event_type": "OrderCreated",
        "aggregate_type": "order",
        "aggregate_id": str(order["order_id"]),
        "sequence": 1,
    }
    assert datetime.fromisoformat(body["occurred_at"]) == event["created_at"]
    assert body["payload"] == order == api.get(f"/orders/{order['order_id']}").json()
    assert event["sent_at"] is not None and event["retry_count"] == 0
    [attempt] = attempts_of(db, event["event_id"])
    assert (attempt["attempt_number"], attempt["outcome"], attempt["http_status"]) == (1, "SENT", 201)
    assert attempt["workflow_id"].startswith(f"{relay.config.schedule_id}-run")
    assert uuid.UUID(attempt["run_id"])


def test_server_errors_are_retried_with_every_attempt_kept_until_sent(api, db, catalog, sink, relay):
    sink.set_faults(fail_next=[500, 503])
    relay.start_worker()
    place(api, catalog)

    [event] = wait_for_statuses(db, "SENT")

    assert event["retry_count"] == 2
    attempts = attempts_of(db, event["event_id"])
    assert [(a["attempt_number"], a["outcome"], a["http_status"]) for a in attempts] == [
        (1, "RETRY", 500),
        (2, "RETRY", 503),
        (3, "SENT", 201),
    ]
    assert "HTTP 500" in attempts[0]["error"]
    assert len(sink.received()) == 1


def test_a_client_error_that_other_events_escape_fails_the_event_without_spending_its_budget(db, catalog, sink, relay):
    sink.set_faults(fail_orders=["refused"], fail_statuses=[422])
    [refused] = insert_pending_events(db, ["refused"])
    relay.start_worker()
    healthy = itertools.count()

    def refused_failed_while_orders_flow() -> bool:
        insert_pending_events(db, [f"healthy-{next(healthy)}"])
        return {row["status"] for row in event_rows(db) if str(row["event_id"]) == refused} == {"FAILED"}

    wait_until(refused_failed_while_orders_flow, timeout=30, interval=0.05, what="the refused event to fail")

    [event] = [row for row in event_rows(db) if str(row["event_id"]) == refused]
    assert event["retry_count"] == 1
    assert "HTTP 422" in event["last_error"]
    attempts = [(a["outcome"], a["http_status"]) for a in attempts_of(db, refused)]
    # Refused before any other event was seen accepted: held (the platform might refuse everyone), then FAILED.
    assert attempts[-1] == ("FAILED", 422) and set(attempts[:-1]) <= {("HELD", 422)}
    assert refused not in {event["key"] for event in sink.received()}


def test_a_poison_event_among_healthy_ones_uses_its_budget_and_ends_failed(db, catalog, sink, relay):
    sink.set_faults(fail_orders=["poison"], fail_statuses=[502])
    [poison] = insert_pending_events(db, ["poison"])
    relay.start_worker()
    healthy = itertools.count()

    def poison_failed_while_orders_flow() -> bool:
        insert_pending_events(db, [f"healthy-{next(healthy)}" for _ in range(3)])
        return {row["status"] for row in event_rows(db) if str(row["event_id"]) == poison} == {"FAILED"}

    wait_until(poison_failed_while_orders_flow, timeout=30, interval=0.05, what="the poison event to fail")

    [event] = [row for row in event_rows(db) if str(row["event_id"]) == poison]
    assert event["retry_count"] == 4  # RELAY_MAX_ATTEMPTS of the test relay
    assert event["last_error"].startswith("gave up after 4 attempts")
    assert [a["outcome"] for a in attempts_of(db, event["event_id"])] == ["RETRY", "RETRY", "RETRY", "FAILED"]
    assert len(wait_for_statuses(db, "SENT", "FAILED")) == next(healthy) + 1
    assert sink.stats()["received"] == next(healthy) - 1


def test_a_connection_refused_is_retried_like_a_server_error(api, db, catalog, sink, relay):
    relay.config.extra["EXTERNAL_PLATFORM_URL"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    relay.config.extra["RELAY_MAX_ATTEMPTS"] = "2"
    relay.start_worker()
    place(api, catalog)

    [event] = wait_for_statuses(db, "FAILED")

    attempts = attempts_of(db, event["event_id"])
    assert [(a["outcome"], a["http_status"]) for a in attempts] == [("RETRY", None), ("FAILED", None)]
    assert attempts[0]["error"].startswith("no answer")


def test_retry_after_is_honoured_up_to_the_longest_backoff(api, db, catalog, sink, relay):
    relay.config.extra["RELAY_BACKOFF_MAX_SECONDS"] = "3"
    sink.set_faults(fail_next=[429, 503], retry_after="2")
    relay.start_worker()
    place(api, catalog)

    [event] = wait_for_statuses(db, "SENT")

    first, second, third = attempts_of(db, event["event_id"])
    assert (first["outcome"], first["http_status"]) == ("RETRY", 429)
    assert (second["attempted_at"] - first["attempted_at"]).total_seconds() >= 2
    assert (third["attempted_at"] - second["attempted_at"]).total_seconds() >= 2


def test_events_of_one_order_arrive_in_order_even_when_the_first_delivery_failed(api, db, catalog, sink, relay):
    sink.set_faults(fail_next=[503, 503])
    relay.start_worker()
    order = place(api, catalog)
    confirmed = pay(api, order)
    assert confirmed.status_code == 200

    wait_for_statuses(db, "SENT")

    received = sink.received(str(order["order_id"]))
    assert [(r["body"]["event_type"], r["body"]["sequence"]) for r in received] == [
        ("OrderCreated", 1),
        ("OrderConfirmed", 2),
    ]
    assert received[1]["body"]["payload"]["status"] == "CONFIRMED"
    assert sink.stats()["gaps"] == []
    created = next(row for row in event_rows(db) if row["sequence"] == 1)
    assert created["retry_count"] == 2
