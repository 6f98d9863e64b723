"""Idempotency-Key on POST /orders: a retry gets the first response, never a second order."""

import threading

import httpx

from tests.catalog import count_rows, stock_of
from tests.polling import wait_until


def body(catalog, quantity=1):
    return {"customer_id": "customer-1", "items": [{"product_id": catalog.products["af1"], "quantity": quantity}]}


def test_a_retry_with_the_same_key_and_body_gets_the_first_response(api, db, catalog):
    first = api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})
    again = api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert count_rows(db, "orders") == 1
    assert count_rows(db, "order_events") == 1
    assert stock_of(db, catalog.products["af1"]) == 19


def test_a_retry_shows_the_order_as_first_answered_even_after_it_changed(api, catalog):
    first = api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"}).json()
    api.post(f"/orders/{first['order_id']}/confirm", json={"payment_id": "pay-1", "amount": first["total"]})

    again = api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})

    assert again.json() == first


def test_the_same_key_with_another_body_is_refused(api, db, catalog):
    api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})

    response = api.post("/orders", json=body(catalog, quantity=2), headers={"Idempotency-Key": "key-1"})

    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert count_rows(db, "orders") == 1


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
                httpx.post(f"{api_url}/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"}, timeout=30)
            )
        )
        sender.start()
        wait_until(
            lambda: db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0],
            what="the first request to hold its key",
        )

        second = api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})

        sender.join(timeout=30)
        assert second.status_code == 409
        assert second.json()["code"] == "IDEMPOTENCY_KEY_IN_FLIGHT"
        assert first[0].status_code == 201
        assert count_rows(db, "orders") == 1
    finally:
        db.execute("DROP TRIGGER slow_for_test ON orders")
        db.execute("DROP FUNCTION slow_for_test()")


def test_different_keys_place_different_orders(api, db, catalog):
    api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-1"})
    api.post("/orders", json=body(catalog), headers={"Idempotency-Key": "key-2"})

    assert count_rows(db, "orders") == 2
