"""Malformed requests get 422 problem+json, never a 500; unknown routes get problem+json too."""

import pytest

from tests.catalog import count_rows

GOOD_LINE = {"product_id": 1, "quantity": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": "c", "items": []},
        {"customer_id": "c"},
        {"items": [GOOD_LINE]},
        {"customer_id": "", "items": [GOOD_LINE]},
        {"customer_id": "c\x00", "items": [GOOD_LINE]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": 0}]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": -1}]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": 1001}]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": "1"}]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": True}]},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": 1.5}]},
        {"customer_id": "c", "items": [{"product_id": 2**63, "quantity": 1}]},
        {"customer_id": "c", "items": [{"product_id": 1}]},
        {"customer_id": "c", "items": [GOOD_LINE], "coupon_id": "WELCOME5000"},
        {"customer_id": "c", "items": [GOOD_LINE], "coupon_id": 0},
        {"customer_id": "c", "items": [GOOD_LINE], "total": 1},
        {"customer_id": "c", "items": [{"product_id": 1, "quantity": 1, "price": 1}]},
        {"customer_id": 7, "items": [GOOD_LINE]},
        {"customer_id": "c", "items": [GOOD_LINE] * 101},
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


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"customer_id": "c", "items": [}'])
def test_a_body_that_is_not_json_is_422(api, catalog, raw):
    response = api.post("/orders", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"payment_id": "p"},
        {"payment_id": "", "amount": 1},
        {"payment_id": "p", "amount": -1},
        {"payment_id": "p", "amount": "1"},
    ],
)
def test_a_malformed_confirmation_is_422(api, catalog, body):
    response = api.post("/orders/1/confirm", json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("path", ["/orders/abc", "/orders/0", f"/orders/{2**63}", "/products/-1"])
def test_an_impossible_id_is_422(api, catalog, path):
    response = api.get(path)

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


def test_an_overlong_idempotency_key_is_422(api, catalog):
    response = api.post(
        "/orders",
        json={"customer_id": "c", "items": [{"product_id": catalog.products["af1"], "quantity": 1}]},
        headers={"Idempotency-Key": "k" * 256},
    )

    assert response.status_code == 422


def test_a_sku_filter_with_control_characters_is_422_not_500(api, catalog):
    """Found by the schema fuzzer: PostgreSQL refuses NUL bytes in text."""
    response = api.get("/products", params={"sku": "AF1\x00"})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
