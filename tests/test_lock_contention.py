"""A row locked from outside for a long time fails only the orders that need it; the rest of the API keeps answering."""

import asyncio
import time
from collections import Counter

import httpx
import psycopg

from devstack.local_postgres import libpq_url
from tests.support.customers import customer_headers
from tests.support.ordering import order_body, place

HOLD_SECONDS = 25
BUYERS_OF_THE_LOCKED_PRODUCT = 20


def test_a_product_locked_for_25_seconds_fails_only_its_orders_while_reads_and_readyz_answer(
    api_url, database_url, catalog
):
    locked, other = catalog.products["af1"], catalog.products["dunk"]
    orders_of_locked: list[httpx.Response] = []
    orders_of_other: list[httpx.Response] = []
    probes: list[tuple[str, int, float]] = []

    async def buyer(client: httpx.AsyncClient, number: int, until: float) -> None:
        while time.monotonic() < until:  # a client that retries at once, as impatient ones do
            orders_of_locked.append(
                await client.post("/orders", json=order_body((locked, 1)), headers=customer_headers(f"buyer-{number}"))
            )

    async def other_buyer(client: httpx.AsyncClient, until: float) -> None:
        number = 0
        while time.monotonic() < until:
            number += 1
            orders_of_other.append(
                await client.post("/orders", json=order_body((other, 1)), headers=customer_headers(f"other-{number}"))
            )
            await asyncio.sleep(1)

    async def prober(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            for path in (f"/products/{locked}", "/readyz"):
                started = time.monotonic()
                response = await client.get(path)
                probes.append((path, response.status_code, time.monotonic() - started))
            await asyncio.sleep(0.1)

    async def load(until: float) -> None:
        limits = httpx.Limits(max_connections=BUYERS_OF_THE_LOCKED_PRODUCT + 4)
        async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:
            await asyncio.gather(
                *(buyer(client, number, until) for number in range(BUYERS_OF_THE_LOCKED_PRODUCT)),
                other_buyer(client, until),
                prober(client, until),
            )

    with psycopg.connect(libpq_url(database_url)) as holder:
        holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (locked,))
        asyncio.run(load(until=time.monotonic() + HOLD_SECONDS))
        holder.rollback()

    assert orders_of_locked, "the buyers sent nothing"
    assert {(r.status_code, r.json()["code"]) for r in orders_of_locked} == {(503, "ORDER_CONTENTION")}
    assert all(r.headers["retry-after"] == "1" for r in orders_of_locked)
    assert {r.status_code for r in orders_of_other} == {201}
    assert Counter(status for _, status, _ in probes) == {200: len(probes)}
    slowest = max(seconds for _, _, seconds in probes)
    assert slowest < 1, f"a read waited {slowest:.2f} s"
    print(
        f"{len(orders_of_locked)} orders of the locked product refused (503), {len(orders_of_other)} of another"
        f" product placed (slowest {max(r.elapsed.total_seconds() for r in orders_of_other) * 1000:.0f} ms),"
        f" {len(probes)} reads and readiness probes answered 200 (slowest {slowest * 1000:.0f} ms)"
    )


def test_orders_placed_after_many_lock_timeouts_on_the_same_connections_succeed(api_with, database_url, catalog):
    """A failed pipeline must not leave its connection believing in prepared statements that were never made.

    psycopg prepares a statement on its fifth run; were that run's pipeline aborted before the Parse,
    the next order on the connection would fail with "prepared statement ... does not exist". Runs
    that succeed count towards the five, so the orders below succeed a few times before they fail.
    """
    url = api_with(database_lock_timeout_ms=50)
    af1 = catalog.products["af1"]

    with httpx.Client(base_url=url, timeout=30) as client:
        before = [place(client, (af1, 1), customer=f"before-{n}") for n in range(3)]
        with psycopg.connect(libpq_url(database_url)) as holder:
            holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (af1,))
            refused = [place(client, (af1, 1), customer=f"refused-{n}") for n in range(12)]
            holder.rollback()
        placed = [place(client, (af1, 1), customer=f"placed-{n}") for n in range(6)]

    assert {response.status_code for response in before} == {201}
    assert {response.status_code for response in refused} == {503}
    assert {response.status_code for response in placed} == {201}


def test_orders_after_the_databases_connections_were_cut_get_503_at_most_once_per_connection(api_with, db, catalog):
    """Connections the order path keeps between orders may die (a restart, an administrator): no 500, no hang."""
    af1 = catalog.products["af1"]
    started = db.execute("SELECT now()").fetchone()[0]
    url = api_with()  # its own API: only its connections are cut

    with httpx.Client(base_url=url, timeout=30) as client:
        assert {place(client, (af1, 1), customer=f"before-{n}").status_code for n in range(5)} == {201}
        cut = db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'sneaker-orders-api' AND backend_start > %s",
            (started,),
        ).fetchone()[0]
        after = [place(client, (af1, 1), customer=f"after-{n}") for n in range(cut + 5)]

    assert cut >= 1
    answers = Counter((r.status_code, r.json().get("code")) for r in after)
    assert set(answers) <= {(201, None), (503, "DATABASE_UNAVAILABLE")}
    assert answers[(503, "DATABASE_UNAVAILABLE")] <= cut
    assert [r.status_code for r in after[-5:]] == [201] * 5
