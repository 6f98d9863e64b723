"""A catalog cached by the API that has gone stale costs a retry, never a wrong order; refusals come from read facts."""

import asyncio
import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest

from db.engine import create_engine
from db.orders.catalog_cache import CatalogCache
from db.orders.errors import InsufficientStock, ProductUnavailable, PurchaseLimitExceeded, TooManyUnpaidOrders
from db.orders.holdings_cache import HoldingsCache
from db.orders.placement import PlacedOrder, place_order
from db.orders.pricing import OrderLine, ProductForSale
from devstack.local_postgres import libpq_url
from tests.support.catalog import count_rows, events_of, snapshot, stock_of
from tests.support.customers import customer_headers
from tests.support.order_requests import order_of, order_request
from tests.support.ordering import order_body
from tests.support.prometheus_text import sample


def place(
    database_url: str,
    cache: CatalogCache,
    customer: str,
    *lines: tuple[int, int],
    holdings: HoldingsCache | None = None,
    **request,
) -> PlacedOrder:
    """Place an order through place_order with `cache` (and `holdings`), as the API does."""

    async def run() -> PlacedOrder:
        engine = create_engine(database_url, pool_size=2)
        try:
            return await place_order(
                engine,
                order_request(customer, [OrderLine(*line) for line in lines], **request),
                catalog=cache,
                holdings=holdings,
            )
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture
def cache(database_url, catalog) -> CatalogCache:
    """A cache that has seen every test product, by placing one order of each for stock to spare."""
    cache = CatalogCache()
    for name in ("af1", "dunk", "limited"):
        placed = place(database_url, cache, f"warm-{name}", (catalog.products[name], 1))
        assert placed.writes == 1
    assert cache.products([catalog.products[name] for name in ("af1", "dunk", "limited")]) is not None
    return cache


def test_an_order_of_cached_products_is_written_in_one_go(database_url, db, catalog, cache):
    placed = place(database_url, cache, "customer-1", (catalog.products["af1"], 2), (catalog.products["dunk"], 1))

    assert placed.writes == 1
    assert order_of(placed).total == 2 * 139000 + 129000
    [event] = events_of(db, placed.order_id)
    assert event["payload"] == order_of(placed).model_dump(mode="json")


def test_a_price_changed_after_it_was_cached_is_charged_at_the_new_price(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    db.execute("UPDATE products SET price = 149000 WHERE id = %s", (af1,))

    stale = place(database_url, cache, "customer-1", (af1, 2))
    learned = place(database_url, cache, "customer-2", (af1, 1))

    assert stale.writes == 2  # the cached price was written against, refused, and the order decided again
    assert (order_of(stale).items[0].unit_price, order_of(stale).total) == (149000, 298000)
    assert events_of(db, stale.order_id)[0]["payload"]["total"] == 298000
    assert db.execute("SELECT unit_price FROM order_items WHERE order_id = %s", (stale.order_id,)).fetchone() == (
        149000,
    )
    assert learned.writes == 1  # the refused write handed back the new price, which the cache kept


@pytest.mark.parametrize(
    ("change", "refusal", "detail"),
    [
        ("UPDATE products SET active = false WHERE id = {af1}", ProductUnavailable, "is not for sale"),
        ("UPDATE products SET stock = 1 WHERE id = {af1}", InsufficientStock, "has 1 in stock, 2 requested"),
    ],
    ids=["withdrawn", "sold-out"],
)
def test_a_change_since_the_cache_is_refused_exactly_and_writes_nothing(
    database_url, db, catalog, cache, change, refusal, detail
):
    db.execute(change.format(af1=catalog.products["af1"]))
    before = snapshot(db)

    with pytest.raises(refusal, match=detail):
        place(database_url, cache, "customer-1", (catalog.products["af1"], 2))

    assert snapshot(db) == before


def test_a_limit_set_since_the_cache_is_respected(database_url, db, catalog, cache):
    limited = catalog.products["limited"]
    db.execute("UPDATE products SET max_per_customer = 1 WHERE id = %s", (limited,))

    with pytest.raises(PurchaseLimitExceeded, match="you hold 1 and asked for 1"):
        place(database_url, cache, "warm-limited", (limited, 1))  # the customer who warmed the cache holds one


def test_a_customer_assumed_to_hold_nothing_is_refused_429_from_the_real_count(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    placed = [place(database_url, cache, "customer-1", (af1, 1)) for _ in range(3)]

    with pytest.raises(TooManyUnpaidOrders) as refused:
        place(database_url, cache, "customer-1", (af1, 1))

    assert [order.writes for order in placed] == [1, 2, 2]  # assumed to hold nothing, then told otherwise
    assert 890 <= refused.value.retry_after_seconds <= 900
    assert count_rows(db, "orders") == 3 + 3  # the three of the cache's warm-up


def test_a_customers_next_orders_start_from_what_their_last_one_left(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    holdings = HoldingsCache()

    placed = [place(database_url, cache, "customer-1", (af1, 1), holdings=holdings) for _ in range(3)]
    with pytest.raises(TooManyUnpaidOrders) as refused:
        place(database_url, cache, "customer-1", (af1, 1), holdings=holdings)

    assert [order.writes for order in placed] == [1, 1, 1]  # 0, 1 and 2 unpaid orders, known here
    assert 890 <= refused.value.retry_after_seconds <= 900  # the refusal comes from the facts read
    assert count_rows(db, "orders") == 3 + 3


def test_pairs_of_a_limited_drop_are_counted_from_what_the_last_order_left(database_url, db, catalog):
    limited = catalog.products["limited"]
    db.execute("UPDATE products SET max_per_customer = 2 WHERE id = %s", (limited,))
    cache, holdings = CatalogCache(), HoldingsCache()

    placed = [place(database_url, cache, "customer-1", (limited, 1), holdings=holdings) for _ in range(2)]
    with pytest.raises(PurchaseLimitExceeded, match="you hold 2 and asked for 1"):
        place(database_url, cache, "customer-1", (limited, 1), holdings=holdings)

    assert [order.writes for order in placed] == [1, 1]


def test_holdings_gone_stale_cost_one_retry(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    holdings = HoldingsCache()
    first = place(database_url, cache, "customer-1", (af1, 1), holdings=holdings)
    db.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = %s", (first.order_id,))  # as a cancellation would

    second = place(database_url, cache, "customer-1", (af1, 1), holdings=holdings)
    third = place(database_url, cache, "customer-1", (af1, 1), holdings=holdings)

    assert (first.writes, second.writes, third.writes) == (1, 2, 1)


def test_a_cache_that_would_refuse_an_order_never_refuses_it(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    cache.note({af1: ProductForSale(af1, 139000, None, False, None)})  # believed withdrawn; it is for sale

    placed = place(database_url, cache, "customer-1", (af1, 1))

    assert order_of(placed).items[0].unit_price == 139000
    assert stock_of(db, af1) == 20 - 1 - 1


def test_a_coupon_order_is_decided_from_a_read_whatever_the_cache_says(database_url, db, catalog, cache):
    af1 = catalog.products["af1"]
    db.execute("UPDATE products SET price = 100000 WHERE id = %s", (af1,))

    placed = place(database_url, cache, "customer-1", (af1, 1), coupon_id=catalog.coupons["fixed"])

    assert placed.writes == 1
    assert (order_of(placed).subtotal, order_of(placed).discount) == (100000, 5000)


def test_prices_changed_under_load_never_give_a_wrong_order(api_url, database_url, db, catalog):
    """Buyers order one SKU without pause while its price flips; the database refuses any order at a price not current.

    A trigger checks each line as it is inserted, while the order's write holds the product's row
    lock: a line at another price than the product has then would fail the order with a 500.
    """
    af1 = catalog.products["af1"]
    db.execute("UPDATE products SET stock = 1000000 WHERE id = %s", (af1,))
    db.execute(
        "CREATE FUNCTION price_is_current() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.unit_price <> (SELECT price FROM products WHERE id = NEW.product_id) THEN"
        " RAISE EXCEPTION 'order line at % while the price is another', NEW.unit_price; END IF; RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER price_is_current BEFORE INSERT ON order_items FOR EACH ROW EXECUTE FUNCTION price_is_current()"
    )
    redecided_before = metric(api_url, "sneaker_orders_order_writes_redecided_total")
    flips, stop = [], threading.Event()

    def flip_prices() -> None:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            while not stop.wait(0.05):
                admin.execute(
                    "UPDATE products SET price = CASE price WHEN 139000 THEN 149000 ELSE 139000 END WHERE id = %s",
                    (af1,),
                )
                flips.append(time.monotonic())

    async def buyers(until: float) -> list[httpx.Response]:
        responses: list[httpx.Response] = []

        async def buyer(number: int) -> None:
            sent = 0
            while time.monotonic() < until:
                sent += 1
                headers = customer_headers(f"buyer-{number}-{sent}")
                responses.append(await client.post("/orders", json=order_body((af1, 1)), headers=headers))

        async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=httpx.Limits(max_connections=16)) as client:
            await asyncio.gather(*(buyer(number) for number in range(16)))
        return responses

    flipper = threading.Thread(target=flip_prices)
    flipper.start()
    try:
        responses = asyncio.run(buyers(until=time.monotonic() + 3))
    finally:
        stop.set()
        flipper.join(timeout=10)
        db.execute("DROP TRIGGER price_is_current ON order_items")
        db.execute("DROP FUNCTION price_is_current()")

    assert len(flips) >= 20
    assert Counter(response.status_code for response in responses) == {201: len(responses)}
    assert {response.json()["items"][0]["unit_price"] for response in responses} == {139000, 149000}
    assert metric(api_url, "sneaker_orders_order_writes_redecided_total") > redecided_before  # stale, retried
    print(f"{len(responses)} orders while the price flipped {len(flips)} times, none at a price not current")


def metric(api_url: str, name: str) -> float:
    return sample(httpx.get(f"{api_url}/metrics").text, name) or 0.0
