"""Unpaid orders expire once past their deadline: stock and coupon use back, OrderExpired written."""

from tests.support.catalog import events_of, stock_of, used_count_of
from tests.support.expiry import expire, past_deadline
from tests.support.payments import pay
from tests.test_order_lifecycle import place


def test_an_order_past_its_deadline_expires_and_gives_back_what_it_held(api, db, catalog, database_url):
    stock_before = stock_of(db, catalog.products["af1"])
    order = place(api, catalog, quantity=2, coupon="five_uses")
    past_deadline(db, order)

    assert expire(database_url) == [order["order_id"]]

    expired = api.get(f"/orders/{order['order_id']}").json()
    assert expired["status"] == "EXPIRED" and expired["expired_at"] is not None
    assert stock_of(db, catalog.products["af1"]) == stock_before
    assert used_count_of(db, catalog.coupons["five_uses"]) == 0
    events = events_of(db, order["order_id"])
    assert [(event["event_type"], event["sequence"]) for event in events] == [("OrderCreated", 1), ("OrderExpired", 2)]
    assert events[1]["payload"] == expired


def test_orders_within_their_deadline_and_paid_orders_never_expire(api, db, catalog, database_url):
    unpaid = place(api, catalog)
    paid = place(api, catalog)
    confirmed = pay(api, paid, payment_id="p-1")
    assert confirmed.status_code == 200
    past_deadline(db, paid)

    assert expire(database_url) == []

    statuses = [api.get(f"/orders/{order['order_id']}").json()["status"] for order in (unpaid, paid)]
    assert statuses == ["CREATED", "CONFIRMED"]


def test_expiry_works_in_bounded_batches(api, db, catalog, database_url):
    orders = [place(api, catalog, quantity=1) for _ in range(3)]
    for order in orders:
        past_deadline(db, order)

    assert len(expire(database_url, limit=2)) == 2
    assert len(expire(database_url, limit=2)) == 1
