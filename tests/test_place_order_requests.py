"""POST /orders, one route: every kind of request gets its documented answer."""

import json

import httpx

from tests.support.catalog import count_rows
from tests.support.customers import customer_headers, token_for


def requests_of(catalog, customer: str) -> list[tuple[str, dict, bytes | None]]:
    """(name, headers, body) of requests of every kind, for `customer`."""
    af1, retired = catalog.products["af1"], catalog.products["retired"]

    def body(value) -> bytes:
        return json.dumps(value).encode()

    json_type = {"content-type": "application/json"}
    mine = {**customer_headers(customer), **json_type}
    line = {"product_id": af1, "quantity": 1}
    return [
        ("no token", json_type, body({"items": [line]})),
        ("not bearer", {"Authorization": f"Basic {token_for(customer)}", **json_type}, body({"items": [line]})),
        ("expired token", {**customer_headers(customer, ttl_seconds=-120), **json_type}, body({"items": [line]})),
        ("no content type", customer_headers(customer), body({"items": [line]})),
        ("text content type", {**customer_headers(customer), "content-type": "text/plain"}, body({"items": [line]})),
        ("not json", mine, b"{"),
        ("empty body", mine, b""),
        ("a list", mine, body([line])),
        ("string quantity", mine, body({"items": [{**line, "quantity": "1"}]})),
        ("unknown field", mine, body({"items": [line], "customer_id": "x"})),
        ("no items", mine, body({"items": []})),
        ("empty key", {**mine, "Idempotency-Key": ""}, body({"items": [line]})),
        ("long key", {**mine, "Idempotency-Key": "k" * 256}, body({"items": [line]})),
        ("long key and bad body", {**mine, "Idempotency-Key": "k" * 256}, body({"items": []})),
        ("unknown product", mine, body({"items": [{"product_id": 9999, "quantity": 1}]})),
        ("inactive product", mine, body({"items": [{"product_id": retired, "quantity": 1}]})),
        ("short stock", mine, body({"items": [{"product_id": af1, "quantity": 999}]})),
        ("unknown coupon", mine, body({"items": [line], "coupon_id": 9999})),
        (
            "placed, json suffix",
            {**customer_headers(customer), "content-type": "application/vnd.x+json"},
            body({"items": [line]}),
        ),
        ("placed with a coupon", mine, body({"items": [line], "coupon_id": catalog.coupons["percent_capped"]})),
        ("placed with a key", {**mine, "Idempotency-Key": f"{customer}-k"}, body({"items": [line]})),
        ("replayed", {**mine, "Idempotency-Key": f"{customer}-k"}, body({"items": [line]})),
        ("key reused", {**mine, "Idempotency-Key": f"{customer}-k"}, body({"items": [{**line, "quantity": 2}]})),
        ("too many unpaid", mine, body({"items": [line]})),
    ]


def answer(response: httpx.Response) -> dict:
    """What a client sees of a response, less what differs by customer or time."""
    seen = {"status": response.status_code, "type": response.headers["content-type"]}
    content = response.json()
    if response.status_code == 201:
        seen["body"] = {key: content[key] for key in ("status", "coupon_id", "subtotal", "discount", "total", "items")}
        seen["replayed"] = response.headers.get("idempotent-replayed")
        seen["location"] = response.headers["location"] == f"/orders/{content['order_id']}"
    else:
        seen["code"] = content["code"]
        seen["retry_after"] = response.headers.get("retry-after") is not None
        seen["www_authenticate"] = response.headers.get("www-authenticate")
        if content["code"] == "VALIDATION_ERROR" and response.request.content not in (b"{", b""):
            seen["locations"] = sorted(tuple(map(str, error["location"])) for error in content["errors"])
    return seen


def test_every_kind_of_request_gets_its_answer(api_url, catalog):
    with httpx.Client(base_url=api_url, timeout=30) as client:
        answers = [
            (name, answer(client.post("/orders", content=content, headers=headers)))
            for name, headers, content in requests_of(catalog, "kinds-customer")
        ]

    statuses = [seen["status"] for _, seen in answers]
    assert statuses == [401] * 3 + [422] * 11 + [400] * 4 + [201] * 4 + [422, 429]
    assert [seen.get("replayed") for _, seen in answers[-6:-2]] == [None, None, None, "true"]
    assert all(seen["location"] for _, seen in answers if seen["status"] == 201)
    assert dict(answers)["long key and bad body"]["locations"] == [("body", "items"), ("header", "Idempotency-Key")]
    assert dict(answers)["expired token"]["www_authenticate"] == 'Bearer error="invalid_token"'


def test_a_body_that_is_not_utf8_is_a_422(api, db, catalog):
    body = b'{"items": [{"product_id": 1, "quantity": 1}], "note": "\xff"}'

    response = api.post("/orders", content=body, headers={"content-type": "application/json"})

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")
    assert count_rows(db, "orders") == 0
