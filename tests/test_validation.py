"""Malformed requests get 422 problem+json, never a 500; unknown routes get problem+json too."""

import json

import pytest

from tests.support.catalog import count_rows
from tests.support.payments import signed

GOOD_LINE = {"product_id": 1, "quantity": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {},
        {"customer_id": "c", "items": [GOOD_LINE]},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": -1}]},
        {"items": [{"product_id": 1, "quantity": 1001}]},
        {"items": [{"product_id": 1, "quantity": "1"}]},
        {"items": [{"product_id": 1, "quantity": True}]},
        {"items": [{"product_id": 1, "quantity": 1.5}]},
        {"items": [{"product_id": 2**63, "quantity": 1}]},
        {"items": [{"product_id": 1}]},
        {"items": [GOOD_LINE], "coupon_id": "WELCOME5000"},
        {"items": [GOOD_LINE], "coupon_id": 0},
        {"items": [GOOD_LINE], "total": 1},
        {"items": [{"product_id": 1, "quantity": 1, "price": 1}]},
        {"items": [GOOD_LINE] * 101},
        [GOOD_LINE],
    ],
)
def test_a_malformed_order_body_is_422_and_writes_nothing(api, db, catalog, body):
    response = api.post("/orders", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (422, "VALIDATION_ERROR")
    assert problem["errors"]
    assert count_rows(db, "orders") == 0


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"items": [}'])
def test_a_body_that_is_not_json_is_422(api, catalog, raw):
    response = api.post("/orders", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"order_id": 1, "payment_id": "p"},
        {"order_id": 1, "payment_id": "", "amount": 1},
        {"order_id": 1, "payment_id": "p", "amount": -1},
        {"order_id": 1, "payment_id": "p", "amount": "1"},
        {"order_id": 1, "payment_id": "p", "amount": 1, "customer_id": "c"},
        {"payment_id": "p", "amount": 1},
        {"order_id": "1", "payment_id": "p", "amount": 1},
        {"order_id": 0, "payment_id": "p", "amount": 1},
    ],
)
def test_a_malformed_confirmation_is_422(api, catalog, body):
    content = json.dumps(body).encode()

    response = api.post("/orders/1/confirm", content=content, headers=signed(content))

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "path",
    [
        "/orders/abc",
        "/orders/0",
        f"/orders/{2**63}",
        "/orders/+1",
        "/orders/%201",
        "/orders/1%20",
        "/orders/1.0",
        "/orders/1_0",
        "/orders/1e0",
        "/orders/0x1",
        "/orders/%EF%BC%91",  # a fullwidth digit one
        "/orders/+1/cancel",
        "/products/-1",
        "/products/+1",
        "/products/1.0",
        "/products/1_0",
    ],
)
def test_an_id_that_is_not_plain_decimal_digits_is_422(api, catalog, path):
    response = api.post(path) if path.endswith("/cancel") else api.get(path)

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_an_unknown_route_is_a_404_problem(api):
    response = api.get("/nowhere")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "NOT_FOUND"


def test_a_wrong_method_is_a_405_problem(api):
    response = api.delete("/orders")

    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("path", "allowed"), [("/orders", {"GET", "POST"}), ("/orders/1", {"GET"}), ("/orders/1/cancel", {"POST"})]
)
def test_a_405_allows_every_method_of_its_path(api, path, allowed):
    response = api.options(path)

    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed


def test_an_integral_number_is_an_integer_as_json_schema_says(api, db, catalog):
    line = {"product_id": float(catalog.products["af1"]), "quantity": 1.0}

    response = api.post("/orders", content=json.dumps({"items": [line]}), headers={"content-type": "application/json"})

    assert response.status_code == 201, response.text
    assert response.json()["items"][0]["product_id"] == catalog.products["af1"]


def test_an_overlong_idempotency_key_is_422(api, catalog):
    response = api.post(
        "/orders",
        json={"items": [{"product_id": catalog.products["af1"], "quantity": 1}]},
        headers={"Idempotency-Key": "k" * 256},
    )

    assert response.status_code == 422


def test_a_sku_filter_with_control_characters_is_422_not_500(api, catalog):
    """Found by the schema fuzzer: PostgreSQL refuses NUL bytes in text."""
    response = api.get("/products", params={"sku": "AF1\x00"})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
