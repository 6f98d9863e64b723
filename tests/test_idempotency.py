"""Idempotency-Key on POST /orders: per customer, a retry gets the first response, never a second order."""

import asyncio
import threading

import httpx

from db.engine import create_engine
from db.orders.idempotency import purge_expired_idempotency_keys
from tests.support.catalog import count_rows, stock_of
from tests.support.customers import customer_headers
from tests.support.ordering import order_body, place
from tests.support.payments import pay
from tests.support.polling import wait_until


def body(catalog, quantity=1):
    return order_body((catalog.products["af1"], quantity))


def post(api, catalog, key, quantity=1, customer="customer-1"):
    return place(api, (catalog.products["af1"], quantity), customer=customer, headers={"Idempotency-Key": key})


def test_a_retry_with_the_same_key_and_body_gets_the_first_response(api, db, catalog):
    first = post(api, catalog, "key-1")
    again = post(api, catalog, "key-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert count_rows(db, "orders") == 1
    assert count_rows(db, "order_events") == 1
    assert stock_of(db, catalog.products["af1"]) == 19


def test_a_retry_shows_the_order_as_first_answered_even_after_it_changed(api, catalog):
    first = post(api, catalog, "key-1").json()
    pay(api, first)

    again = post(api, catalog, "key-1")

    assert again.json() == first


def test_a_retry_is_answered_after_the_orders_events_were_deleted(api, db, catalog):
    first = post(api, catalog, "key-1").json()
    db.execute("DELETE FROM order_events")  # as retention does once they are SENT and old

    again = post(api, catalog, "key-1")

    assert (again.status_code, again.json()) == (201, first)
    assert count_rows(db, "orders") == 1


def test_the_same_key_with_another_body_is_refused(api, db, catalog):
    post(api, catalog, "key-1")

    response = post(api, catalog, "key-1", quantity=2)

    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert count_rows(db, "orders") == 1


def test_keys_belong_to_their_customer(api, db, catalog):
    mine = post(api, catalog, "key-1", customer="customer-a").json()

    same_body = post(api, catalog, "key-1", customer="customer-b")
    other_body = post(api, catalog, "key-1", quantity=2, customer="customer-b")

    assert same_body.status_code == 201 and "idempotent-replayed" not in same_body.headers
    assert same_body.json()["order_id"] != mine["order_id"]
    assert same_body.json()["customer_id"] == "customer-b"
    assert (other_body.status_code, other_body.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert count_rows(db, "orders") == 2


def test_a_key_past_its_ttl_is_free_again(api, db, catalog):
    first = post(api, catalog, "key-1").json()
    db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")

    again = post(api, catalog, "key-1")

    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["order_id"] != first["order_id"]
    assert db.execute("SELECT order_id FROM idempotency_keys").fetchall() == [(again.json()["order_id"],)]
    assert post(api, catalog, "key-1").json() == again.json()


def test_expired_keys_are_purged_in_bounded_batches(api, db, catalog, database_url):
    for number in range(3):
        post(api, catalog, f"key-{number}", customer=f"customer-{number}")
    live = post(api, catalog, "key-live").json()
    db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key <> 'key-live'")

    async def purge(limit):
        engine = create_engine(database_url, pool_size=1)
        try:
            return await purge_expired_idempotency_keys(engine, limit=limit)
        finally:
            await engine.dispose()

    assert [asyncio.run(purge(2)), asyncio.run(purge(2)), asyncio.run(purge(2))] == [2, 1, 0]
    assert db.execute("SELECT key, order_id FROM idempotency_keys").fetchall() == [("key-live", live["order_id"])]


def test_the_same_key_while_the_first_request_is_in_flight_gets_409(api, api_url, db, catalog):
    # The first request is held inside its transaction by a slow trigger, as a slow database would.
    db.execute(
        "CREATE FUNCTION slow_for_test() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$"
    )
    db.execute("CREATE TRIGGER slow_for_test AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION slow_for_test()")
    try:
        first: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: first.append(
                httpx.post(
                    f"{api_url}/orders",
                    json=body(catalog),
                    headers={**customer_headers(), "Idempotency-Key": "key-1"},
                    timeout=30,
                )
            )
        )
        sender.start()
        wait_until(
            lambda: db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0],
            what="the first request to hold its key",
        )

        second = post(api, catalog, "key-1")

        sender.join(timeout=30)
        assert second.status_code == 409
        assert second.json()["code"] == "IDEMPOTENCY_KEY_IN_FLIGHT"
        assert first[0].status_code == 201
        assert count_rows(db, "orders") == 1
    finally:
        db.execute("DROP TRIGGER slow_for_test ON orders")
        db.execute("DROP FUNCTION slow_for_test()")


def test_different_keys_place_different_orders(api, db, catalog):
    post(api, catalog, "key-1")
    post(api, catalog, "key-2")

    assert count_rows(db, "orders") == 2
