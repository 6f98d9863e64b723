"""A drop is fair: one account cannot hold the stock, and concurrent buyers never oversell it."""

import threading
import time
from collections import Counter

import httpx

from tests.support.catalog import stock_of
from tests.support.customers import customer_headers
from tests.support.ordering import order_body, place_concurrently


def test_a_hoarder_ordering_the_whole_catalogue_and_cancelling_every_2_s_leaves_others_their_pairs(
    api_url, db, catalog
):
    products = catalog.products
    everything = [(products[name], stock_of(db, products[name])) for name in ("af1", "dunk", "samba", "limited")]
    limited = products["limited"]
    hoarder_answers: Counter[str] = Counter()
    stop, holding = threading.Event(), threading.Event()

    def hoard() -> None:
        with httpx.Client(base_url=api_url, timeout=30, headers=customer_headers("hoarder")) as client:
            while not stop.is_set():
                # The whole catalogue first; then the most of the drop one order may hold.
                for lines in (everything, [(limited, 10)], [(limited, 5)]):
                    answer = client.post("/orders", json=order_body(*lines))
                    hoarder_answers[answer.json().get("code", "201") if answer.status_code != 201 else "201"] += 1
                    if answer.status_code == 201:
                        holding.set()
                        stop.wait(2)
                        client.post(f"/orders/{answer.json()['order_id']}/cancel")
                        break
                else:
                    stop.wait(0.2)

    hoarder = threading.Thread(target=hoard)
    hoarder.start()
    try:
        assert holding.wait(30), hoarder_answers  # the hoarder got there first: every pair of the drop is theirs
        assert stock_of(db, limited) == 0
        bought = buy_until(api_url, limited, buyers=[f"buyer-{n}" for n in range(10)], seconds=8)
    finally:
        stop.set()
        hoarder.join()

    assert bought == 10, hoarder_answers
    # Once they cancelled, the hoarder never took the drop back: the cool-down refuses it (or, once the
    # others bought, the stock); a line of more pairs than one line may hold is refused as such.
    assert hoarder_answers["201"] == 1, hoarder_answers
    assert "LINE_PAIRS_EXCEEDED" in hoarder_answers, hoarder_answers
    assert set(hoarder_answers) <= {"201", "LINE_PAIRS_EXCEEDED", "RECENTLY_CANCELLED", "INSUFFICIENT_STOCK"}
    held = db.execute(
        "SELECT coalesce(sum(quantity), 0) FROM order_items JOIN orders ON orders.id = order_id"
        " WHERE customer_id = 'hoarder' AND status = 'CREATED'"
    ).fetchone()[0]
    assert held <= 20  # MAX_UNPAID_PAIRS_PER_CUSTOMER


def buy_until(api_url: str, product: int, *, buyers: list[str], seconds: float) -> int:
    """Each buyer asks for one pair every 100 ms until they have it or `seconds` pass; how many got one."""
    waiting, deadline = list(buyers), time.monotonic() + seconds
    with httpx.Client(base_url=api_url, timeout=30) as client:
        while waiting and time.monotonic() < deadline:
            for buyer in list(waiting):
                answer = client.post("/orders", json=order_body((product, 1)), headers=customer_headers(buyer))
                if answer.status_code == 201:
                    waiting.remove(buyer)
            time.sleep(0.1)
    return len(buyers) - len(waiting)


def test_200_concurrent_buyers_of_10_pairs_buy_exactly_10(api_url, db, catalog):
    limited = catalog.products["limited"]

    answers = place_concurrently(api_url, [(f"buyer-{n}", order_body((limited, 1))) for n in range(200)])

    assert Counter(answer.status_code for answer in answers) == {201: 10, 400: 190}
    assert {answer.json()["code"] for answer in answers if answer.status_code == 400} == {"INSUFFICIENT_STOCK"}
    assert stock_of(db, limited) == 0
    assert db.execute("SELECT count(*) FROM order_items WHERE product_id = %s", (limited,)).fetchone()[0] == 10
