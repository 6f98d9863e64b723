"""Sold out is cheap: refused from memory without the product's row, and buyable again within 1 s in every process."""

import asyncio
import itertools
import time

import httpx
import psycopg
import pytest

from db.catalog.seeding import CatalogFile, ProductEntry, upsert_catalog
from db.engine import create_engine
from devstack.local_postgres import libpq_url
from tests.support.api_process import ApiProcess
from tests.support.catalog import PRODUCTS, stock_of
from tests.support.customers import customer_headers
from tests.support.expiry import expire, past_deadline
from tests.support.ordering import order_body, place
from tests.support.polling import wait_until

_BUYERS = itertools.count(1)


def buy(api: ApiProcess, product: int, quantity: int = 1, customer: str | None = None) -> httpx.Response:
    """One order of `product` through `api`, by a new customer unless one is named."""
    customer = customer or f"buyer-{next(_BUYERS)}"
    return httpx.post(
        f"{api.url}/orders", json=order_body((product, quantity)), headers=customer_headers(customer), timeout=30
    )


def code_of(response: httpx.Response) -> str | None:
    return response.json().get("code") if response.status_code >= 400 else None


def sold_out_everywhere(apis: list[ApiProcess], product: int, database_url: str) -> None:
    """Every process has seen the product sold out (a read), and refuses it now without touching its row."""
    for api in apis:
        assert code_of(buy(api, product)) == "INSUFFICIENT_STOCK"
    with psycopg.connect(libpq_url(database_url), autocommit=False) as holder:
        holder.execute("SELECT FROM products WHERE id = %s FOR UPDATE", (product,))
        for api in apis:
            started = time.monotonic()
            answer = buy(api, product)
            # The order path would wait for this row lock (DATABASE_LOCK_TIMEOUT_MS, 2 s) and answer 503.
            assert code_of(answer) == "INSUFFICIENT_STOCK"
            assert time.monotonic() - started < 0.5
        holder.rollback()


def buyable_within_a_second(apis: list[ApiProcess], product: int, since: float) -> list[float]:
    """For each process, how long after `since` an order of `product` was first placed through it."""
    delays = []
    for api in apis:
        wait_until(lambda api=api: buy(api, product).status_code == 201, timeout=2, interval=0.01, what="a 201")
        delays.append(time.monotonic() - since)
    return delays


def restock(database_url: str, product: int, stock: int) -> None:
    sku, price, _, active = next(entry for entry in PRODUCTS.values() if entry[0] == sku_of(database_url, product))
    entry = ProductEntry(sku=sku, name="restocked", brand="Nike", size="270", price=price, stock=stock, active=active)

    async def run() -> None:
        engine = create_engine(database_url, pool_size=1)
        try:
            await upsert_catalog(engine, CatalogFile(products=[entry]))
        finally:
            await engine.dispose()

    asyncio.run(run())


def sku_of(database_url: str, product: int) -> str:
    with psycopg.connect(libpq_url(database_url)) as connection:
        return connection.execute("SELECT sku FROM products WHERE id = %s", (product,)).fetchone()[0]


@pytest.mark.parametrize("giving_back", ["a cancel", "an expiry", "a restock"])
def test_a_product_refused_from_memory_is_buyable_within_a_second_in_each_process(
    two_apis, db, catalog, database_url, giving_back
):
    product = catalog.products["limited"]
    db.execute("UPDATE products SET stock = 2 WHERE id = %s", (product,))
    holder = buy(two_apis[0], product, 2, customer="holder")
    assert holder.status_code == 201
    sold_out_everywhere(two_apis, product, database_url)

    if giving_back == "a cancel":
        answer = httpx.post(
            f"{two_apis[1].url}/orders/{holder.json()['order_id']}/cancel", headers=customer_headers("holder")
        )
        assert answer.status_code == 200
    elif giving_back == "an expiry":
        past_deadline(db, holder.json())
        assert expire(database_url) == [holder.json()["order_id"]]
    else:
        restock(database_url, product, 2)
    given_back = time.monotonic()
    delays = buyable_within_a_second(two_apis, product, given_back)

    print(giving_back, [f"{delay * 1000:.0f} ms" for delay in delays])
    assert max(delays) <= 1.0, delays
    assert stock_of(db, product) == 0


def test_a_keyed_retry_of_the_order_that_took_the_last_pair_is_answered_as_the_first_time(api, db, catalog):
    product = catalog.products["limited"]
    db.execute("UPDATE products SET stock = 1 WHERE id = %s", (product,))
    first = place(api, (product, 1), customer="last-pair", headers={"Idempotency-Key": "checkout-1"})
    assert first.status_code == 201
    assert place(api, (product, 1), customer="too-late").json()["code"] == "INSUFFICIENT_STOCK"  # sold out, known
    assert place(api, (product, 1), customer="later-still").json()["code"] == "INSUFFICIENT_STOCK"

    again = place(api, (product, 1), customer="last-pair", headers={"Idempotency-Key": "checkout-1"})

    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
