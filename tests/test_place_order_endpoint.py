"""POST /orders is answered by a pure ASGI handler in front of FastAPI: it answers exactly as the documented route."""

import json

import httpx
import pytest

from api.app import create_app
from tests.support.catalog import count_rows
from tests.support.customers import customer_headers, token_for
from tests.support.serving import serve


@pytest.fixture(scope="module")
def route_url(settings):
    """The API with POST /orders left to its FastAPI route (dependencies, FastAPI's validation)."""
    with serve(create_app(settings, order_endpoint=False)) as url:
        yield url


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


def test_the_endpoint_answers_every_kind_of_request_as_the_fastapi_route(api_url, route_url, catalog):
    answers = {}
    for url, customer in ((api_url, "endpoint-customer"), (route_url, "route-customer")):
        with httpx.Client(base_url=url, timeout=30) as client:
            answers[url] = [
                (name, answer(client.post("/orders", content=content, headers=headers)))
                for name, headers, content in requests_of(catalog, customer)
            ]

    for (name, by_endpoint), (_, by_route) in zip(answers[api_url], answers[route_url], strict=True):
        assert by_endpoint == by_route, name
    statuses = [seen["status"] for _, seen in answers[api_url]]
    assert statuses == [401] * 3 + [422] * 11 + [400] * 4 + [201] * 4 + [422, 429]
    assert [seen.get("replayed") for _, seen in answers[api_url][-6:-2]] == [None, None, None, "true"]


def test_a_body_that_is_not_utf8_is_a_422_from_the_endpoint(api, db, catalog):
    body = b'{"items": [{"product_id": 1, "quantity": 1}], "note": "\xff"}'

    response = api.post("/orders", content=body, headers={"content-type": "application/json"})

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")
    assert count_rows(db, "orders") == 0
