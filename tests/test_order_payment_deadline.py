"""No payment after the deadline: a late payment expires the order and is refused; confirm and expiry race cleanly."""

import asyncio
import random
import time

import httpx

from db.engine import create_engine
from db.orders.expiry import expire_due_orders
from tests.support.catalog import events_of, snapshot, stock_of
from tests.support.expiry import expire, past_deadline
from tests.support.ordering import order_body, place_concurrently, placed
from tests.support.payments import confirmation_body, pay, signed


def status_of(db, order) -> str:
    return db.execute("SELECT status FROM orders WHERE id = %s", (order["order_id"],)).fetchone()[0]


def test_a_payment_for_an_expired_order_is_refused_and_changes_nothing(api, db, catalog, database_url):
    order = placed(api, (catalog.products["af1"], 1))
    past_deadline(db, order)
    expire(database_url)
    before = snapshot(db)

    response = pay(api, order)

    assert (response.status_code, response.json()["code"]) == (409, "ORDER_EXPIRED")
    assert {table: rows for table, rows in snapshot(db).items() if table != "payment_webhooks"} == {
        table: rows for table, rows in before.items() if table != "payment_webhooks"
    }


def test_a_payment_after_the_deadline_expires_the_order_and_is_refused(api, db, catalog):
    af1 = catalog.products["af1"]
    order = placed(api, (af1, 2))
    past_deadline(db, order)

    response = pay(api, order, webhook_id="msg_late")
    again = pay(api, order, webhook_id="msg_late")

    assert (response.status_code, response.json()["code"]) == (409, "ORDER_EXPIRED")
    assert again.json() == response.json()
    assert status_of(db, order) == "EXPIRED"
    assert stock_of(db, af1) == 20
    events = events_of(db, order["order_id"])
    assert [(event["event_type"], event["sequence"]) for event in events] == [("OrderCreated", 1), ("OrderExpired", 2)]
    assert events[1]["payload"]["status"] == "EXPIRED"


def test_an_expired_order_cannot_be_cancelled(api, db, catalog, database_url):
    order = placed(api, (catalog.products["af1"], 1))
    past_deadline(db, order)
    expire(database_url)

    response = api.post(f"/orders/{order['order_id']}/cancel")

    assert (response.status_code, response.json()["code"]) == (409, "INVALID_ORDER_STATE")


def test_fifty_payments_racing_the_expiry_at_the_deadline_each_end_one_way(api_url, db, database_url):
    """Every order ends CONFIRMED or EXPIRED, never both; stock is given back exactly once; no late payment."""
    product = db.execute(
        "INSERT INTO products (sku, name, brand, size, price, stock) VALUES ('DEADLINE', 'd', 'b', '1', 1000, 50)"
        " RETURNING id"
    ).fetchone()[0]
    responses = place_concurrently(api_url, [(f"payer-{n}", order_body((product, 1))) for n in range(50)])
    orders = [response.json() for response in responses]
    assert {response.status_code for response in responses} == {201}
    # All fall due together, a second and a half from now by the database's clock.
    db.execute("UPDATE orders SET expires_at = now() + interval '1.5 seconds'")
    deadline = time.monotonic() + 1.5

    expired_by_schedule: list[int] = []

    async def race() -> list[httpx.Response]:
        engine = create_engine(database_url, pool_size=4)

        async def confirm(client, order):
            await asyncio.sleep(max(0, deadline + random.uniform(-0.4, 0.4) - time.monotonic()))
            content = confirmation_body(order, payment_id=f"pay-{order['order_id']}")
            return await client.post(f"/orders/{order['order_id']}/confirm", content=content, headers=signed(content))

        async def expire_repeatedly():
            await asyncio.sleep(max(0, deadline - 0.2 - time.monotonic()))
            while time.monotonic() < deadline + 0.8:
                expired_by_schedule.extend(await expire_due_orders(engine, limit=5))

        try:
            limits = httpx.Limits(max_connections=len(orders))
            async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as client:
                confirms = asyncio.gather(*(confirm(client, order) for order in orders))
                await asyncio.gather(*(expire_repeatedly() for _ in range(3)))
                return await confirms
        finally:
            await engine.dispose()

    answers = asyncio.run(race())

    rows = {
        row[0]: row[1:]
        for row in db.execute("SELECT id, status, confirmed_at, expired_at, expires_at FROM orders").fetchall()
    }
    for order, answer in zip(orders, answers, strict=True):
        status, confirmed_at, expired_at, expires_at = rows[order["order_id"]]
        kinds = [event["event_type"] for event in events_of(db, order["order_id"])]
        if answer.status_code == 200:
            assert status == "CONFIRMED" and expired_at is None
            assert confirmed_at < expires_at, "a payment was accepted after the deadline"
            assert kinds == ["OrderCreated", "OrderConfirmed"]
        else:
            assert (answer.status_code, answer.json()["code"]) == (409, "ORDER_EXPIRED"), answer.text
            assert status == "EXPIRED" and confirmed_at is None
            assert kinds == ["OrderCreated", "OrderExpired"]
    confirmed = sum(answer.status_code == 200 for answer in answers)
    assert stock_of(db, product) == 50 - confirmed
    assert len(expired_by_schedule) == len(set(expired_by_schedule)) <= 50 - confirmed
    print(
        f"{confirmed} of 50 payments were in time; {50 - confirmed} were refused, of which"
        f" {len(expired_by_schedule)} orders were expired by expire_due_orders and the rest by their late payment"
    )
