"""Two API processes share nothing but PostgreSQL: an Idempotency-Key and the purchase limits hold across them."""

import asyncio
from collections import Counter

import httpx

from tests.support.api_process import ApiProcess
from tests.support.catalog import count_rows
from tests.support.customers import customer_headers
from tests.support.ordering import order_body


def send_to_both(apis: list[ApiProcess], requests: list[tuple[str, dict, dict]]) -> list[httpx.Response]:
    """Send every (customer, body, extra headers) at once, alternating between the two processes."""

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=len(requests))) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{apis[number % 2].url}/orders", json=body, headers={**customer_headers(customer), **extra}
                    )
                    for number, (customer, body, extra) in enumerate(requests)
                )
            )

    return asyncio.run(send_all())


def test_one_idempotency_key_sent_to_both_processes_at_once_places_one_order(two_apis, db, catalog):
    body = order_body((catalog.products["af1"], 1))

    responses = send_to_both(two_apis, [("customer-1", body, {"Idempotency-Key": "checkout-1"})] * 20)
    again = [send_to_both([api], [("customer-1", body, {"Idempotency-Key": "checkout-1"})])[0] for api in two_apis]

    assert set(Counter(response.status_code for response in responses)) <= {201, 409}
    placed = {response.json()["order_id"] for response in responses + again if response.status_code == 201}
    assert len(placed) == 1
    assert [response.status_code for response in again] == [201, 201]
    assert again[0].json() == again[1].json()
    assert count_rows(db, "orders") == 1


def test_a_one_pair_limit_holds_for_one_customer_ordering_through_both_processes(two_apis, db, catalog):
    limited = catalog.products["limited"]
    db.execute("UPDATE products SET max_per_customer = 1 WHERE id = %s", (limited,))

    responses = send_to_both(two_apis, [("hoarder", order_body((limited, 1)), {})] * 20)

    assert Counter(response.status_code for response in responses) == {201: 1, 400: 19}
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {"PURCHASE_LIMIT_EXCEEDED"}
    assert count_rows(db, "orders") == 1


def test_the_unpaid_orders_limit_holds_across_processes(two_apis, db, catalog):
    body = order_body((catalog.products["af1"], 1))

    responses = send_to_both(two_apis, [("customer-1", body, {})] * 10)

    assert Counter(response.status_code for response in responses) == {201: 3, 429: 7}
    assert {r.json()["code"] for r in responses if r.status_code == 429} == {"TOO_MANY_UNPAID_ORDERS"}
    assert count_rows(db, "orders") == 3
