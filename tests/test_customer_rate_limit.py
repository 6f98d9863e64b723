"""A buyer cannot crowd others out: beyond CUSTOMER_RATE_LIMIT_PER_SECOND, 429 RATE_LIMITED before any database work."""

import time
from collections import Counter

import httpx

from api.app import create_app
from tests.support.customers import customer_headers
from tests.support.ordering import order_body, place_concurrently
from tests.support.ports import free_port
from tests.support.serving import serve


def test_requests_beyond_the_burst_are_answered_429_without_touching_the_database(settings):
    # A database nobody listens on: every request that does database work answers 503 DATABASE_UNAVAILABLE,
    # so each 429 was answered before any (no connection was even tried for it).
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    limited = settings.model_copy(
        update={"database_url": unreachable, "customer_rate_limit_per_second": 0.5, "customer_rate_limit_burst": 3}
    )
    with serve(create_app(limited)) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = [client.post("/orders", json=order_body((1, 1)), headers=customer_headers("eager")) for _ in range(8)]
        other = client.post("/orders", json=order_body((1, 1)), headers=customer_headers("patient"))

    assert [answer.status_code for answer in answers] == [503] * 3 + [429] * 5
    assert {answer.json()["code"] for answer in answers[:3]} == {"DATABASE_UNAVAILABLE"}
    assert {answer.json()["code"] for answer in answers[3:]} == {"RATE_LIMITED"}
    assert all(1 <= int(answer.headers["Retry-After"]) <= 2 for answer in answers[3:])
    assert other.status_code == 503  # another customer has a bucket of their own


def test_the_default_rate_is_one_no_person_reaches(settings, db, catalog):
    # Ten orders a second with a burst of twenty: a person clicking as fast as they can is never refused.
    defaults = settings.model_copy(update={"customer_rate_limit_per_second": 10.0, "customer_rate_limit_burst": 20})
    af1 = catalog.products["af1"]
    with serve(create_app(defaults)) as url:
        burst = place_concurrently(url, [(f"clicker-{n % 5}", order_body((af1, 1))) for n in range(25)])
        started = time.monotonic()
        script = place_concurrently(url, [("script", order_body((af1, 1)))] * 40)
        seconds = time.monotonic() - started

    assert "RATE_LIMITED" not in {answer.json().get("code") for answer in burst}
    codes = Counter(answer.json().get("code") for answer in script if answer.status_code >= 400)
    # Twenty at once, then ten a second.
    assert 40 - 20 - 10 * seconds <= codes["RATE_LIMITED"] <= 20


def test_every_order_route_counts_against_the_customers_rate(settings, db, catalog):
    # A burst of four and no refill within the test: a customer's fifth request on any order route is
    # 429 RATE_LIMITED, read or write, while another customer's requests go through.
    limited = settings.model_copy(update={"customer_rate_limit_per_second": 0.05, "customer_rate_limit_burst": 4})
    af1 = catalog.products["af1"]
    with serve(create_app(limited)) as url, httpx.Client(base_url=url, timeout=30) as client:
        eager, patient = customer_headers("eager"), customer_headers("patient")
        mine = client.post("/orders", json=order_body((af1, 1)), headers=eager)
        order = mine.json()["order_id"]
        within = [
            client.get("/orders", headers=eager),
            client.get(f"/orders/{order}", headers=eager),
            client.get(f"/orders/{order}", headers=eager),
        ]
        beyond = {
            "GET /orders": client.get("/orders", headers=eager),
            "GET /orders/{id}": client.get(f"/orders/{order}", headers=eager),
            "POST /orders/{id}/cancel": client.post(f"/orders/{order}/cancel", headers=eager),
            "POST /orders": client.post("/orders", json=order_body((af1, 1)), headers=eager),
        }
        theirs = client.post("/orders", json=order_body((af1, 1)), headers=patient).json()["order_id"]
        other = [
            client.get("/orders", headers=patient),
            client.get(f"/orders/{theirs}", headers=patient),
            client.post(f"/orders/{theirs}/cancel", headers=patient),
        ]

    assert mine.status_code == 201 and [answer.status_code for answer in within] == [200] * 3
    assert {route: answer.status_code for route, answer in beyond.items()} == dict.fromkeys(beyond, 429)
    assert {answer.json()["code"] for answer in beyond.values()} == {"RATE_LIMITED"}
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in beyond.values())
    assert [answer.status_code for answer in other] == [200] * 3
    assert other[2].json()["status"] == "CANCELLED"
    # Refused before any database work: the eager customer's cancel changed nothing, and no second order exists.
    statuses = dict(db.execute("SELECT customer_id, array_agg(status::text) FROM orders GROUP BY customer_id"))
    assert statuses == {"eager": ["CREATED"], "patient": ["CANCELLED"]}


def test_every_customer_route_documents_429_rate_limited(settings):
    paths = create_app(settings).openapi()["paths"]
    for path, method in [
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{order_id}", "get"),
        ("/orders/{order_id}/cancel", "post"),
    ]:
        refused = paths[path][method]["responses"]["429"]
        assert "RATE_LIMITED" in refused["description"] and "Retry-After" in refused["headers"], (method, path)
