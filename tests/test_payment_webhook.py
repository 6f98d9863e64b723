"""Only the payment provider confirms: Standard Webhooks signatures, 5 minutes of tolerance, each webhook-id once."""

import asyncio
import json
import time
from datetime import timedelta

import httpx
import pytest

from db.engine import create_engine
from db.orders.payments import purge_answered_webhooks
from tests.support.catalog import count_rows, events_of, snapshot
from tests.support.customers import customer_headers
from tests.support.ordering import placed
from tests.support.payments import confirmation_body, pay, signed


def post_confirm(client, order, content: bytes, headers: dict) -> httpx.Response:
    return client.post(f"/orders/{order['order_id']}/confirm", content=content, headers=headers)


@pytest.fixture
def order(api, catalog):
    return placed(api, (catalog.products["af1"], 1))


def without(headers: dict, name: str) -> dict:
    return {key: value for key, value in headers.items() if key != name}


@pytest.mark.parametrize(
    "forge",
    [
        lambda body: ({"content-type": "application/json"}, body),
        lambda body: (without(signed(body), "webhook-signature"), body),
        lambda body: (without(signed(body), "webhook-id"), body),
        lambda body: (without(signed(body), "webhook-timestamp"), body),
        lambda body: (signed(body, secret="whsec_" + "QUJD" * 11), body),  # another secret
        lambda body: (signed(body), body.replace(b'"pay-1"', b'"pay-2"')),  # body changed after signing
        lambda body: (signed(body, timestamp=time.time() - 6 * 60), body),  # stale
        lambda body: (signed(body, timestamp=time.time() + 6 * 60), body),  # from the future
        lambda body: ({**signed(body), "webhook-signature": "garbage"}, body),
        lambda body: ({**signed(body), "webhook-signature": "v1,!!not base64!!"}, body),
        lambda body: ({**signed(body), "webhook-timestamp": "nan"}, body),
        lambda body: ({**signed(body), "webhook-timestamp": "1e300"}, body),
        lambda body: ({**signed(body), "webhook-id": "x" * 256}, body),
        lambda body: (signed(body), body + b"\xff"),  # not UTF-8
        lambda body: (customer_headers(), body),  # a customer's token is no payment
    ],
    ids=[
        "unsigned",
        "no-signature",
        "no-id",
        "no-timestamp",
        "other-secret",
        "tampered",
        "stale",
        "future",
        "garbage-signature",
        "bad-base64",
        "nan-time",
        "huge-time",
        "long-id",
        "not-utf8",
        "customer-token",
    ],
)
def test_a_confirmation_not_signed_by_the_provider_is_401_and_changes_nothing(anonymous, db, order, forge):
    headers, content = forge(confirmation_body(order))
    before = snapshot(db)

    response = post_confirm(anonymous, order, content, headers)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHORIZED"
    assert "www-authenticate" in response.headers
    assert snapshot(db) == before


def test_a_signed_confirmation_within_the_tolerance_is_accepted(anonymous, order):
    content = confirmation_body(order)

    response = post_confirm(anonymous, order, content, signed(content, timestamp=time.time() - 4 * 60))

    assert (response.status_code, response.json()["status"]) == (200, "CONFIRMED")


def test_a_repeated_webhook_id_answers_as_the_first_time_and_changes_nothing(anonymous, db, order):
    content = confirmation_body(order)
    first = post_confirm(anonymous, order, content, signed(content, webhook_id="msg_1"))
    before = snapshot(db)

    again = post_confirm(anonymous, order, content, signed(content, webhook_id="msg_1"))

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert snapshot(db) == before
    assert [event["event_type"] for event in events_of(db, order["order_id"])] == ["OrderCreated", "OrderConfirmed"]


def test_a_webhook_id_reused_for_another_order_is_409_and_changes_nothing(anonymous, db, api, catalog, order):
    other = placed(api, (catalog.products["dunk"], 1), customer="customer-2")
    content = confirmation_body(order)
    first = post_confirm(anonymous, order, content, signed(content, webhook_id="msg_1"))
    before = snapshot(db)
    for_other = confirmation_body(other, payment_id="pay-2")

    reused = post_confirm(anonymous, other, for_other, signed(for_other, webhook_id="msg_1"))

    assert first.status_code == 200
    assert (reused.status_code, reused.json()["code"]) == (409, "WEBHOOK_ID_REUSED")
    assert "items" not in reused.json()  # not the first order's answer
    assert snapshot(db) == before


@pytest.fixture
def victim_and_attacker(api, catalog) -> tuple[dict, dict]:
    """Two customers' orders with the same total: a captured webhook for one would pay the other."""
    victim = placed(api, (catalog.products["af1"], 1), customer="victim")
    attacker = placed(api, (catalog.products["af1"], 1), customer="attacker")
    assert victim["total"] == attacker["total"]
    return victim, attacker


def statuses(db, *orders: dict) -> list[str]:
    return [
        db.execute("SELECT status FROM orders WHERE id = %s", (order["order_id"],)).fetchone()[0] for order in orders
    ]


def test_a_webhook_sent_to_another_orders_path_is_400_and_changes_nothing(anonymous, db, victim_and_attacker):
    victim, attacker = victim_and_attacker
    content = confirmation_body(victim, payment_id="pay-victim")
    before = snapshot(db)

    swapped = post_confirm(anonymous, attacker, content, signed(content))

    assert (swapped.status_code, swapped.json()["code"]) == (400, "ORDER_ID_MISMATCH")
    assert swapped.headers["content-type"] == "application/problem+json"
    assert snapshot(db) == before


def test_a_captured_webhook_sent_to_the_wrong_order_first_leaves_the_genuine_one_its_order(
    anonymous, db, victim_and_attacker
):
    victim, attacker = victim_and_attacker
    content = confirmation_body(victim, payment_id="pay-victim")
    headers = signed(content, webhook_id="msg_victim")

    swapped = post_confirm(anonymous, attacker, content, headers)
    genuine = post_confirm(anonymous, victim, content, headers)

    assert (swapped.status_code, swapped.json()["code"]) == (400, "ORDER_ID_MISMATCH")
    assert genuine.status_code == 200, genuine.text
    assert (genuine.json()["order_id"], genuine.json()["status"]) == (victim["order_id"], "CONFIRMED")
    assert statuses(db, victim, attacker) == ["CONFIRMED", "CREATED"]


def test_a_captured_webhook_sent_to_the_wrong_order_after_the_genuine_one_changes_nothing(
    anonymous, db, victim_and_attacker
):
    victim, attacker = victim_and_attacker
    content = confirmation_body(victim, payment_id="pay-victim")
    headers = signed(content, webhook_id="msg_victim")

    genuine = post_confirm(anonymous, victim, content, headers)
    before = snapshot(db)
    swapped = post_confirm(anonymous, attacker, content, headers)

    assert (genuine.status_code, genuine.json()["order_id"]) == (200, victim["order_id"])
    assert (swapped.status_code, swapped.json()["code"]) == (400, "ORDER_ID_MISMATCH")
    assert "customer_id" not in swapped.json()
    assert snapshot(db) == before
    assert statuses(db, victim, attacker) == ["CONFIRMED", "CREATED"]


def test_a_confirmation_without_order_id_is_422_and_changes_nothing(anonymous, db, order):
    content = json.dumps({"payment_id": "pay-1", "amount": order["total"]}).encode()
    before = snapshot(db)

    response = post_confirm(anonymous, order, content, signed(content))

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")
    assert snapshot(db) == before


def test_a_refused_webhook_is_refused_the_same_way_when_repeated(anonymous, db, order):
    content = confirmation_body(order, amount=order["total"] - 1)
    first = post_confirm(anonymous, order, content, signed(content, webhook_id="msg_1"))
    db.execute("UPDATE orders SET total = total - 1, subtotal = subtotal - 1")  # the amount would now match

    again = post_confirm(anonymous, order, content, signed(content, webhook_id="msg_1"))

    assert (first.status_code, first.json()["code"]) == (400, "PAYMENT_AMOUNT_MISMATCH")
    assert (again.status_code, again.json()) == (400, first.json())
    assert db.execute("SELECT status FROM orders").fetchone() == ("CREATED",)


def test_a_payment_pays_at_most_one_order(anonymous, db, api, catalog, order):
    other = placed(api, (catalog.products["dunk"], 1), customer="customer-2")
    assert pay(anonymous, order, payment_id="pay-1").status_code == 200

    response = pay(anonymous, other, payment_id="pay-1", amount=other["total"])

    assert (response.status_code, response.json()["code"]) == (409, "INVALID_ORDER_STATE")
    assert "already paid order" in response.json()["detail"]
    assert db.execute("SELECT status FROM orders WHERE id = %s", (other["order_id"],)).fetchone() == ("CREATED",)


def test_one_payment_sent_for_two_orders_at_once_pays_one(api_url, api, db, catalog):
    orders = [placed(api, (catalog.products["af1"], 1), customer=f"customer-{n}") for n in range(2)]
    orders[1] = {**orders[1], "total": orders[0]["total"]}

    async def send_both():
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
            requests = []
            for one in orders:
                content = confirmation_body(one, payment_id="pay-shared")
                requests.append(
                    client.post(f"/orders/{one['order_id']}/confirm", content=content, headers=signed(content))
                )
            return await asyncio.gather(*requests)

    responses = asyncio.run(send_both())

    assert sorted(response.status_code for response in responses) == [200, 409]
    assert count_rows(db, "orders") == 2
    assert db.execute("SELECT count(*) FROM orders WHERE payment_id = 'pay-shared'").fetchone() == (1,)


def test_old_webhook_answers_are_purged_in_bounded_batches(anonymous, db, api, catalog, database_url):
    for number in range(3):
        pay(anonymous, placed(api, (catalog.products["af1"], 1), customer=f"c-{number}"), payment_id=f"pay-{number}")
    db.execute("UPDATE payment_webhooks SET processed_at = now() - interval '8 days'")
    pay(anonymous, placed(api, (catalog.products["dunk"], 1)), payment_id="pay-recent")

    async def purge():
        engine = create_engine(database_url, pool_size=1)
        try:
            return await purge_answered_webhooks(engine, older_than=timedelta(days=7), limit=2)
        finally:
            await engine.dispose()

    assert [asyncio.run(purge()) for _ in range(3)] == [2, 1, 0]
    assert db.execute("SELECT payment_id FROM payment_webhooks").fetchall() == [("pay-recent",)]
