"""Confirm (by the payment provider) and cancel (by the customer): each transition writes its event with it."""

from tests.support.catalog import events_of, snapshot, stock_of, used_count_of
from tests.support.ordering import placed
from tests.support.payments import pay


def place(api, catalog, quantity=2, coupon=None, **kwargs):
    coupon_id = catalog.coupons[coupon] if coupon else None
    return placed(api, (catalog.products["af1"], quantity), coupon_id=coupon_id, **kwargs)


def test_confirming_a_created_order_writes_order_confirmed(api, db, catalog):
    order = place(api, catalog)

    response = pay(api, order)

    assert response.status_code == 200
    confirmed = response.json()
    assert (confirmed["status"], confirmed["payment_id"]) == ("CONFIRMED", "pay-1")
    assert confirmed["confirmed_at"] is not None
    assert api.get(f"/orders/{order['order_id']}").json() == confirmed
    events = events_of(db, order["order_id"])
    assert [(e["event_type"], e["sequence"], e["status"]) for e in events] == [
        ("OrderCreated", 1, "PENDING"),
        ("OrderConfirmed", 2, "PENDING"),
    ]
    assert events[1]["payload"] == confirmed


def test_confirming_again_with_the_same_payment_changes_nothing(api, db, catalog):
    order = place(api, catalog)
    first = pay(api, order).json()
    before = snapshot(db)

    again = pay(api, order)

    assert again.status_code == 200
    assert again.json() == first
    assert {table: rows for table, rows in snapshot(db).items() if table != "payment_webhooks"} == {
        table: rows for table, rows in before.items() if table != "payment_webhooks"
    }


def test_confirming_with_another_payment_is_refused(api, db, catalog):
    order = place(api, catalog)
    pay(api, order)
    orders_before = snapshot(db)["orders"]

    response = pay(api, order, payment_id="pay-2")

    assert response.status_code == 409
    assert response.json()["code"] == "INVALID_ORDER_STATE"
    assert snapshot(db)["orders"] == orders_before


def test_a_payment_of_another_amount_is_refused(api, db, catalog):
    order = place(api, catalog)
    before = snapshot(db)

    response = pay(api, order, amount=order["total"] - 1)

    assert response.status_code == 400
    assert response.json()["code"] == "PAYMENT_AMOUNT_MISMATCH"
    assert snapshot(db)["orders"] == before["orders"]
    assert snapshot(db)["order_events"] == before["order_events"]


def test_cancelling_gives_back_stock_and_coupon_use_and_writes_order_cancelled(api, db, catalog):
    order = place(api, catalog, quantity=3, coupon="five_uses")
    assert (stock_of(db, catalog.products["af1"]), used_count_of(db, catalog.coupons["five_uses"])) == (17, 1)

    response = api.post(f"/orders/{order['order_id']}/cancel")

    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancelled_at"] is not None
    assert (stock_of(db, catalog.products["af1"]), used_count_of(db, catalog.coupons["five_uses"])) == (20, 0)
    events = events_of(db, order["order_id"])
    assert [(e["event_type"], e["sequence"]) for e in events] == [("OrderCreated", 1), ("OrderCancelled", 2)]
    assert events[1]["payload"] == cancelled


def test_only_a_created_order_can_be_cancelled(api, db, catalog):
    confirmed = place(api, catalog)
    pay(api, confirmed)
    cancelled = place(api, catalog)
    api.post(f"/orders/{cancelled['order_id']}/cancel")
    before = snapshot(db)

    responses = [api.post(f"/orders/{order['order_id']}/cancel") for order in (confirmed, cancelled)]

    assert [(r.status_code, r.json()["code"]) for r in responses] == [(409, "INVALID_ORDER_STATE")] * 2
    assert snapshot(db) == before


def test_a_cancelled_order_cannot_be_confirmed(api, catalog):
    order = place(api, catalog)
    api.post(f"/orders/{order['order_id']}/cancel")

    response = pay(api, order)

    assert (response.status_code, response.json()["code"]) == (409, "INVALID_ORDER_STATE")


def test_an_unknown_order_is_404(api, catalog):
    for response in (
        api.get("/orders/424242"),
        pay(api, {"order_id": 424242, "total": 1}),
        api.post("/orders/424242/cancel"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "ORDER_NOT_FOUND"


def test_the_next_event_takes_the_next_sequence_after_retention_deleted_the_earlier_ones(api, db, catalog):
    order = place(api, catalog)
    db.execute("DELETE FROM order_events WHERE aggregate_id = %s", (str(order["order_id"]),))

    pay(api, order)

    [event] = events_of(db, order["order_id"])
    assert (event["event_type"], event["sequence"]) == ("OrderConfirmed", 2)


def test_every_event_is_serialised_the_same_way(api, db, catalog):
    order = place(api, catalog)
    confirmed = pay(api, order).json()

    created, confirmation = events_of(db, order["order_id"])

    assert created["payload"] == order  # the placement's response, byte for byte the same serialisation
    assert confirmation["payload"] == confirmed
    assert created["payload"]["expires_at"] == confirmation["payload"]["expires_at"] == order["expires_at"]
