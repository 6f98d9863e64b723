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
