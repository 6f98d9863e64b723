"""No hoarding: max_per_customer pairs of a SKU per customer, at most MAX_UNPAID_ORDERS_PER_CUSTOMER unpaid orders."""

import threading
from collections import Counter

import httpx
import psycopg
import pytest

from db.orders.errors import PurchaseLimitExceeded
from db.orders.pricing import OrderLine
from devstack.local_postgres import libpq_url
from tests.support.catalog import count_rows, snapshot
from tests.support.customers import customer_headers
from tests.support.expiry import expire, past_deadline
from tests.support.order_requests import order_request
from tests.support.ordering import order_body, place, place_concurrently, placed
from tests.support.payments import pay
from tests.support.placement_races import place_after_a_change
from tests.support.polling import wait_until


@pytest.fixture
def limited(db, catalog) -> int:
    """The limited drop, at most one pair per customer."""
    db.execute("UPDATE products SET max_per_customer = 1 WHERE id = %s", (catalog.products["limited"],))
    return catalog.products["limited"]


def test_the_catalog_shows_the_limit(api, limited):
    assert api.get(f"/products/{limited}").json()["max_per_customer"] == 1
    assert {product["id"]: product["max_per_customer"] for product in api.get("/products").json()}[limited] == 1


def test_a_customer_may_not_hold_more_pairs_than_the_limit(api, db, limited):
    placed(api, (limited, 1))
    before = snapshot(db)

    second = place(api, (limited, 1))
    two_at_once = place(api, (limited, 2), customer="customer-2")

    for response in (second, two_at_once):
        assert response.status_code == 400
        assert response.json()["code"] == "PURCHASE_LIMIT_EXCEEDED"
    assert snapshot(db) == before
    assert place(api, (limited, 1), customer="customer-2").status_code == 201


def test_paid_pairs_count_and_cancelled_or_expired_ones_do_not(api, db, limited, database_url):
    paid = placed(api, (limited, 1))
    pay(api, paid)
    assert place(api, (limited, 1)).json()["code"] == "PURCHASE_LIMIT_EXCEEDED"

    cancelled = placed(api, (limited, 1), customer="customer-2")
    api.post(f"/orders/{cancelled['order_id']}/cancel", headers=customer_headers("customer-2"))
    expired = placed(api, (limited, 1), customer="customer-3")
    past_deadline(db, expired)
    expire(database_url)

    # Within CANCEL_COOLDOWN_SECONDS the cancelled product is left to others; after it, it is the customer's again.
    assert place(api, (limited, 1), customer="customer-2").json()["code"] == "RECENTLY_CANCELLED"
    db.execute(
        "UPDATE orders SET cancelled_at = cancelled_at - interval '1 hour' WHERE id = %s", (cancelled["order_id"],)
    )
    assert place(api, (limited, 1), customer="customer-2").status_code == 201
    assert place(api, (limited, 1), customer="customer-3").status_code == 201


def test_twenty_concurrent_orders_of_one_customer_for_a_one_pair_drop_give_one_order(api_url, db, limited):
    responses = place_concurrently(api_url, [("hoarder", order_body((limited, 1)))] * 20)

    assert Counter(response.status_code for response in responses) == {201: 1, 400: 19}
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"PURCHASE_LIMIT_EXCEEDED"}
    assert count_rows(db, "orders") == 1


def test_orders_of_one_customer_queued_behind_a_product_lock_still_respect_the_limit(
    api_with, db, database_url, limited
):
    """Each write reads the customer's holdings after taking the customer's lock, never from an older snapshot.

    The orders are decided, then all wait: the first for the product row (locked from outside), the
    others for the customer. Were the holdings read before the customer's lock (or without it), every
    waiting order would find none and write once the product is free.
    """
    url = api_with(database_lock_timeout_ms=30000)
    responses: list[httpx.Response] = []

    def waiting_orders() -> int:
        return db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = 'sneaker-orders-api'"
        ).fetchone()[0]

    with psycopg.connect(libpq_url(database_url)) as holder:
        holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (limited,))
        senders = [
            threading.Thread(
                target=lambda: responses.append(
                    httpx.post(f"{url}/orders", json=order_body((limited, 1)), headers=customer_headers(), timeout=60)
                )
            )
            for _ in range(5)
        ]
        for sender in senders:
            sender.start()
        wait_until(lambda: waiting_orders() == 5, timeout=20, what="five orders waiting for locks")
        holder.commit()
    for sender in senders:
        sender.join(timeout=60)

    assert Counter(response.status_code for response in responses) == {201: 1, 400: 4}


def test_a_limit_set_after_the_decision_is_respected(database_url, db, limited, api, monkeypatch):
    placed(api, (limited, 1))
    db.execute("UPDATE products SET max_per_customer = NULL WHERE id = %s", (limited,))

    with pytest.raises(PurchaseLimitExceeded):
        place_after_a_change(
            database_url,
            order_request("customer-1", [OrderLine(limited, 1)]),
            f"UPDATE products SET max_per_customer = 1 WHERE id = {limited}",
            monkeypatch,
        )

    assert count_rows(db, "orders") == 1


def test_more_unpaid_orders_than_allowed_is_429_until_one_is_paid(api, db, catalog):
    af1 = catalog.products["af1"]
    orders = [placed(api, (af1, 1)) for _ in range(3)]
    before = snapshot(db)

    refused = place(api, (af1, 1))

    assert refused.status_code == 429
    assert refused.json()["code"] == "TOO_MANY_UNPAID_ORDERS"
    assert 890 <= int(refused.headers["retry-after"]) <= 900  # when the oldest unpaid order expires
    assert snapshot(db) == before
    assert place(api, (af1, 1), customer="customer-2").status_code == 201
    pay(api, orders[0])
    assert place(api, (af1, 1)).status_code == 201
