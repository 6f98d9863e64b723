"""Concurrent buyers: no oversell, no coupon over-use, no deadlock turned into a 5xx."""

from collections import Counter

from tests.support.catalog import count_rows, stock_of, used_count_of
from tests.support.ordering import order_body, place_concurrently


def test_fifty_buyers_of_ten_pairs_get_exactly_ten_orders(api_url, db, catalog):
    limited = catalog.products["limited"]
    orders = [(f"buyer-{n}", order_body((limited, 1))) for n in range(50)]

    responses = place_concurrently(api_url, orders)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 10, 400: 40}
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"INSUFFICIENT_STOCK"}
    assert stock_of(db, limited) == 0
    assert count_rows(db, "orders") == 10
    assert count_rows(db, "order_events") == 10


def test_a_coupon_limited_to_five_uses_is_used_five_times_by_twenty_orders(api_url, db, catalog):
    coupon = catalog.coupons["five_uses"]
    orders = [(f"buyer-{n}", order_body((catalog.products["af1"], 1), coupon_id=coupon)) for n in range(20)]

    responses = place_concurrently(api_url, orders)

    assert Counter(response.status_code for response in responses) == {201: 5, 400: 15}
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"COUPON_EXHAUSTED"}
    assert used_count_of(db, coupon) == 5
    assert stock_of(db, catalog.products["af1"]) == 15


def test_multi_item_orders_naming_products_in_opposite_orders_all_succeed(api_url, db, catalog):
    a, b, c = (catalog.products[name] for name in ("af1", "dunk", "samba"))
    forwards = [{"product_id": a, "quantity": 1}, {"product_id": b, "quantity": 1}, {"product_id": c, "quantity": 1}]
    orders = [(f"buyer-{n}", {"items": forwards if n % 2 else list(reversed(forwards))}) for n in range(20)]

    responses = place_concurrently(api_url, orders)

    assert [response.status_code for response in responses] == [201] * 20
    assert [stock_of(db, product) for product in (a, b, c)] == [0, 0, 0]
