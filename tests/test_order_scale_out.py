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


def test_unpaid_pairs_changed_through_the_other_process_are_counted_though_the_unpaid_orders_are_as_many(
    two_apis, db, catalog
):
    first, second = (api.url for api in two_apis)
    af1, dunk, samba = (catalog.products[name] for name in ("af1", "dunk", "samba"))
    headers = customer_headers("customer-1")
    # The first process knows samba, and that customer-1 holds one order of 2 pairs.
    assert (
        httpx.post(f"{first}/orders", json=order_body((samba, 1)), headers=customer_headers("other")).status_code == 201
    )
    held = httpx.post(f"{first}/orders", json=order_body((af1, 2)), headers=headers).json()["order_id"]
    # Through the second: that order cancelled, another of 11 pairs placed. Still one unpaid order.
    assert httpx.post(f"{second}/orders/{held}/cancel", headers=headers).status_code == 200
    assert httpx.post(f"{second}/orders", json=order_body((dunk, 10), (samba, 1)), headers=headers).status_code == 201

    # 2 + 10 pairs as the first process last knew it; 11 + 10 in fact, over MAX_UNPAID_PAIRS_PER_CUSTOMER (20).
    refused = httpx.post(f"{first}/orders", json=order_body((samba, 10)), headers=headers)

    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "UNPAID_PAIRS_EXCEEDED"
    assert count_rows(db, "orders") == 3
