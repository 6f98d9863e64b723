"""Customers are who their bearer JWT says: a missing, expired or forged token is 401; no one sees others' orders."""

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time

import httpx
import jwt
import pytest

import api.customer_auth
from api.customer_auth import CustomerTokens, InvalidCustomerToken
from sneaker_orders.settings import Settings
from tests.support.catalog import count_rows, snapshot
from tests.support.customers import JWT_SECRET, customer_headers, token_for
from tests.support.jwks import ec_key, jwk_of, public_pem, rsa_key, serve_jwks, signed_token
from tests.support.ordering import order_body, placed


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _part(value: dict | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned_token(customer: str = "customer-1") -> str:
    """An `alg: none` token: header and claims, no signature."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part({'sub': customer, 'exp': int(time.time()) + 600})}."


def hs256_token_keyed_with(key: bytes, customer: str = "customer-1") -> str:
    """An HS256 token whose HMAC key is `key` (built by hand: PyJWT refuses to use a PEM key as a secret)."""
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT'})}.{_part({'sub': customer, 'exp': int(time.time()) + 600})}"
    return f"{signing_input}.{_part(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def customer_requests(catalog, order_id=1):
    """One request of every customer endpoint."""
    body = order_body((catalog.products["af1"], 1))
    return [
        ("POST", "/orders", body),
        ("GET", "/orders", None),
        ("GET", f"/orders/{order_id}", None),
        ("POST", f"/orders/{order_id}/cancel", None),
    ]


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Basic {token_for()}"},
        bearer(token_for(ttl_seconds=-120)),  # expired (beyond the clock skew allowed)
        bearer(token_for(secret="another-secret-of-at-least-32-bytes!")),  # forged
        bearer(unsigned_token()),  # alg: none
        bearer(jwt.encode({"sub": "customer-1"}, JWT_SECRET, algorithm="HS256")),  # no exp
        bearer(jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")),  # no sub
        bearer(token_for()[:-2]),  # signature cut
        bearer(jwt.encode({"sub": "c", "exp": int(time.time()) + 60}, JWT_SECRET * 2, algorithm="HS384")),
    ],
    ids=["none", "empty", "garbage", "basic", "expired", "forged", "alg-none", "no-exp", "no-sub", "cut", "hs384"],
)
def test_a_request_without_a_valid_token_is_401_and_changes_nothing(anonymous, db, catalog, headers):
    order = placed(anonymous, (catalog.products["af1"], 1))
    before = snapshot(db)

    for method, path, body in customer_requests(catalog, order["order_id"]):
        assert_unauthorized(anonymous.request(method, path, json=body, headers=headers))

    assert snapshot(db) == before


@pytest.mark.parametrize(
    "customer",
    ["", "x" * 65, "evil\u202eTXT", "zero\u200bwidth", "next\u0085line", "tab\tbed", "nul\x00", 42, ["c"]],
    ids=["empty", "long", "bidi", "zero-width", "nel", "tab", "nul", "number", "list"],
)
def test_a_customer_id_that_is_not_printable_text_is_refused(anonymous, db, catalog, customer):
    token = jwt.encode({"sub": customer, "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")

    assert_unauthorized(anonymous.post("/orders", json=order_body((catalog.products["af1"], 1)), headers=bearer(token)))
    assert count_rows(db, "orders") == 0


def test_the_customer_is_the_tokens_subject(anonymous, catalog):
    order = placed(anonymous, (catalog.products["af1"], 1), customer="Kim Min-jun 김민준")

    assert order["customer_id"] == "Kim Min-jun 김민준"


def test_a_customer_cannot_read_list_cancel_or_pay_anothers_order(anonymous, db, catalog):
    theirs = placed(anonymous, (catalog.products["af1"], 1), customer="customer-b")
    before = snapshot(db)
    mine = customer_headers("customer-a")

    read = anonymous.get(f"/orders/{theirs['order_id']}", headers=mine)
    cancel = anonymous.post(f"/orders/{theirs['order_id']}/cancel", headers=mine)
    confirm = anonymous.post(
        f"/orders/{theirs['order_id']}/confirm", json={"payment_id": "p", "amount": theirs["total"]}, headers=mine
    )
    listed = anonymous.get("/orders", headers=mine)

    missing = anonymous.get("/orders/424242", headers=mine)
    assert (read.status_code, read.json()) == (404, {**missing.json(), "detail": read.json()["detail"]})
    assert read.json()["detail"] == f"order {theirs['order_id']} does not exist"
    assert (cancel.status_code, cancel.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert confirm.status_code == 401  # confirming is the payment provider's, never a customer's
    assert listed.json() == {"orders": [], "next_cursor": None}
    assert snapshot(db) == before


def test_the_orders_of_the_caller_are_listed_newest_first_a_page_at_a_time(anonymous, catalog):
    af1 = catalog.products["af1"]
    mine = [placed(anonymous, (af1, 1), customer="lister") for _ in range(3)]
    placed(anonymous, (af1, 1), customer="someone-else")
    anonymous.post(f"/orders/{mine[1]['order_id']}/cancel", headers=customer_headers("lister"))
    headers = customer_headers("lister")

    first = anonymous.get("/orders", params={"limit": 2}, headers=headers).json()
    second = anonymous.get("/orders", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers).json()
    cancelled = anonymous.get("/orders", params={"status": "CANCELLED"}, headers=headers).json()

    assert [order["order_id"] for order in first["orders"]] == [mine[2]["order_id"], mine[1]["order_id"]]
    assert [order["order_id"] for order in second["orders"]] == [mine[0]["order_id"]]
    assert second["next_cursor"] is None
    assert second["orders"][0] == mine[0]
    assert [order["order_id"] for order in cancelled["orders"]] == [mine[1]["order_id"]]
    assert cancelled["orders"][0]["status"] == "CANCELLED"


@pytest.mark.parametrize("cursor", ["not-a-cursor", "W10", "1-2-3", "-5", "1.5-2", "1" * 18 + "-1", "1-" + "1" * 19])
def test_a_cursor_not_of_the_documented_form_is_422(api, catalog, cursor):
    response = api.get("/orders", params={"cursor": cursor})

    assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")


@pytest.mark.parametrize("cursor", ["0-0", "1764761234567890-42", "99999999999999999-999999999999999999"])
def test_every_cursor_of_the_documented_form_is_a_page(api, catalog, cursor):
    parameters = api.get("/openapi.json").json()["paths"]["/orders"]["get"]["parameters"]
    documented = next(parameter for parameter in parameters if parameter["name"] == "cursor")["schema"]
    pattern = next(choice["pattern"] for choice in documented["anyOf"] if "pattern" in choice)

    assert re.search(pattern, cursor)
    assert api.get("/orders", params={"cursor": cursor}).status_code == 200


def test_rs256_tokens_verified_with_a_public_key(api_with, catalog):
    key = rsa_key()
    url = api_with(auth_jwt_secret=None, auth_public_key=public_pem(key))
    body = order_body((catalog.products["af1"], 1))

    good = httpx.post(f"{url}/orders", json=body, headers=bearer(signed_token(key, "RS256")))
    other_key = httpx.post(f"{url}/orders", json=body, headers=bearer(signed_token(rsa_key(), "RS256")))
    # The classic confusion: the public key (which anyone may know) used as an HMAC secret.
    confused = httpx.post(f"{url}/orders", json=body, headers=bearer(hs256_token_keyed_with(public_pem(key).encode())))
    dev_secret = httpx.post(f"{url}/orders", json=body, headers=customer_headers())

    assert good.status_code == 201
    for refused in (other_key, confused, dev_secret):
        assert_unauthorized(refused)


def test_with_both_an_hs256_secret_and_a_public_key_each_algorithm_has_its_own_key(api_with, catalog):
    key = rsa_key()
    url = api_with(auth_public_key=public_pem(key))
    body = order_body((catalog.products["af1"], 1))
    hs256_with_public_key = hs256_token_keyed_with(public_pem(key).encode())

    assert httpx.post(f"{url}/orders", json=body, headers=bearer(signed_token(key, "RS256"))).status_code == 201
    assert httpx.post(f"{url}/orders", json=body, headers=customer_headers()).status_code == 201
    assert_unauthorized(httpx.post(f"{url}/orders", json=body, headers=bearer(hs256_with_public_key)))


def test_es256_tokens_verified_with_a_public_key(api_with, catalog):
    key = ec_key()
    url = api_with(auth_jwt_secret=None, auth_public_key=public_pem(key))

    response = httpx.post(
        f"{url}/orders", json=order_body((catalog.products["af1"], 1)), headers=bearer(signed_token(key, "ES256"))
    )

    assert response.status_code == 201


def test_tokens_verified_with_the_keys_of_a_jwks_endpoint(api_with, catalog):
    rsa_signer, ec_signer = rsa_key(), ec_key()
    keys = [jwk_of(rsa_signer, "rsa-1", "RS256"), jwk_of(ec_signer, "ec-1", "ES256")]
    with serve_jwks(keys) as jwks_url:
        url = api_with(auth_jwt_secret=None, auth_jwks_url=jwks_url)
        body = order_body((catalog.products["af1"], 1))

        rs256 = httpx.post(f"{url}/orders", json=body, headers=bearer(signed_token(rsa_signer, "RS256", kid="rsa-1")))
        es256 = httpx.get(f"{url}/orders", headers=bearer(signed_token(ec_signer, "ES256", kid="ec-1")))
        unknown_kid = httpx.get(f"{url}/orders", headers=bearer(signed_token(rsa_key(), "RS256", kid="rsa-2")))
        wrong_key_for_kid = httpx.get(f"{url}/orders", headers=bearer(signed_token(rsa_key(), "RS256", kid="rsa-1")))

    assert (rs256.status_code, es256.status_code) == (201, 200)
    assert_unauthorized(unknown_kid)
    assert_unauthorized(wrong_key_for_kid)


def test_issuer_and_audience_are_checked_when_configured(api_with, catalog):
    url = api_with(auth_issuer="https://id.example", auth_audience="sneaker-orders")
    body = order_body((catalog.products["af1"], 1))

    def post(**claims):
        return httpx.post(f"{url}/orders", json=body, headers=customer_headers(**claims))

    assert post(iss="https://id.example", aud="sneaker-orders").status_code == 201
    for claims in (
        {"iss": "https://evil.example", "aud": "sneaker-orders"},
        {"iss": "https://id.example", "aud": "another-service"},
        {"aud": "sneaker-orders"},
        {"iss": "https://id.example"},
    ):
        assert_unauthorized(post(**claims))


def verifier() -> CustomerTokens:
    return CustomerTokens.from_settings(Settings(auth_jwt_secret=JWT_SECRET))


def counting_decodes(monkeypatch) -> list[str]:
    """The tokens PyJWT is asked to verify from now on."""
    decoded: list[str] = []
    decode = jwt.decode

    def counted(token, *args, **kwargs):
        decoded.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(api.customer_auth.jwt, "decode", counted)
    return decoded


def test_a_verified_token_is_not_verified_again_until_its_exp(monkeypatch):
    tokens, token = verifier(), token_for("cached", ttl_seconds=600)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    decoded = counting_decodes(monkeypatch)

    assert [asyncio.run(tokens.customer_of(token)) for _ in range(3)] == ["cached"] * 3
    assert decoded == [token]

    monkeypatch.setattr(api.customer_auth.time, "time", lambda: expires_at + 1)
    asyncio.run(tokens.customer_of(token))  # PyJWT still accepts it within the clock skew, but checks it again
    assert decoded == [token, token]


def test_a_token_that_fails_is_never_kept_and_the_kept_ones_are_bounded(monkeypatch):
    monkeypatch.setattr(api.customer_auth, "VERIFIED_TOKENS_KEPT", 3)
    tokens = verifier()
    forged = token_for(secret="another-secret-of-at-least-32-bytes!")

    for _ in range(2):
        with pytest.raises(InvalidCustomerToken):
            asyncio.run(tokens.customer_of(forged))
    for number in range(5):
        asyncio.run(tokens.customer_of(token_for(f"customer-{number}")))

    assert forged not in tokens._verified
    assert [customer for customer, _ in tokens._verified.values()] == ["customer-2", "customer-3", "customer-4"]
