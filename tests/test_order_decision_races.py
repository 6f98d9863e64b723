"""When the catalog changes between the decision and the write, the write refuses and the order is decided again."""

import pytest

from db.orders.errors import CouponExhausted, InsufficientStock
from db.orders.pricing import OrderLine
from tests.support.catalog import count_rows, events_of, stock_of, used_count_of
from tests.support.order_requests import order_of, order_request
from tests.support.placement_races import place_after_a_change


def test_a_price_changed_after_the_decision_is_charged_at_the_new_price(database_url, db, catalog, monkeypatch):
    af1 = catalog.products["af1"]
    request = order_request("customer-1", [OrderLine(af1, 2)])

    placed = place_after_a_change(
        database_url, request, f"UPDATE products SET price = 149000 WHERE id = {af1}", monkeypatch
    )

    assert order_of(placed).items[0].unit_price == 149000
    assert order_of(placed).total == 298000
    assert stock_of(db, af1) == 18
    [event] = events_of(db, order_of(placed).order_id)
    assert event["payload"]["total"] == 298000
    assert event["payload"]["order_id"] == order_of(placed).order_id


def test_stock_sold_after_the_decision_is_not_oversold(database_url, db, catalog, monkeypatch):
    limited = catalog.products["limited"]
    request = order_request("customer-1", [OrderLine(limited, 2)])

    with pytest.raises(InsufficientStock):
        place_after_a_change(database_url, request, f"UPDATE products SET stock = 1 WHERE id = {limited}", monkeypatch)

    assert stock_of(db, limited) == 1
    assert count_rows(db, "orders") == 0
    assert count_rows(db, "order_events") == 0


def test_coupon_terms_changed_after_the_decision_give_the_new_discount(database_url, db, catalog, monkeypatch):
    coupon = catalog.coupons["fixed"]
    request = order_request("customer-1", [OrderLine(catalog.products["af1"], 1)], coupon_id=coupon)
    edit = f"UPDATE coupons SET discount_value = 9000, updated_at = now() WHERE id = {coupon}"

    placed = place_after_a_change(database_url, request, edit, monkeypatch)

    assert order_of(placed).discount == 9000
    assert used_count_of(db, coupon) == 1


def test_the_last_use_of_a_coupon_taken_after_the_decision_is_not_used_twice(database_url, db, catalog, monkeypatch):
    coupon = catalog.coupons["five_uses"]
    request = order_request("customer-1", [OrderLine(catalog.products["af1"], 1)], coupon_id=coupon)

    with pytest.raises(CouponExhausted):
        place_after_a_change(
            database_url, request, f"UPDATE coupons SET used_count = 5 WHERE id = {coupon}", monkeypatch
        )

    assert used_count_of(db, coupon) == 5
    assert count_rows(db, "orders") == 0
