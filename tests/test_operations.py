"""Health, readiness, metrics, and what clients get when the database is down."""

import httpx

from api.app import create_app
from tests.support.customers import customer_headers
from tests.support.ordering import place
from tests.support.prometheus_text import sample
from tests.support.serving import serve


def test_healthz_and_readyz_answer_when_all_is_up(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_metrics_count_placed_orders_and_problems(api, catalog, db):
    def counted(name: str, **labels: str) -> float:
        return sample(api.get("/metrics").text, name, **labels) or 0.0

    placed = counted("sneaker_orders_orders_placed_total")
    short = counted("sneaker_orders_problems_total", code="INSUFFICIENT_STOCK", status="400")

    place(api, (catalog.products["af1"], 1))
    db.execute("UPDATE products SET stock = 0 WHERE id = %s", (catalog.products["af1"],))
    place(api, (catalog.products["af1"], 1))

    assert counted("sneaker_orders_orders_placed_total") == placed + 1
    assert counted("sneaker_orders_problems_total", code="INSUFFICIENT_STOCK", status="400") == short + 1
    assert 'route="/orders"' in api.get("/metrics").text


def test_a_database_that_cannot_be_reached_gives_503_not_500(settings, tmp_path):
    unreachable = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@/shop?host={tmp_path}/no-such-socket-dir"}
    )
    with serve(create_app(unreachable)) as url, httpx.Client(base_url=url, headers=customer_headers()) as client:
        assert client.get("/healthz").status_code == 200
        for response in (
            client.get("/readyz"),
            client.get("/orders/1"),
            client.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]}),
        ):
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "DATABASE_UNAVAILABLE"
