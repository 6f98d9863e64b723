"""The catalog: products over HTTP, the demo catalog, and catalog files seeded by `sneaker-orders seed`."""

import json

import pytest

from cli.main import main
from db.catalog.seeding import demo_catalog
from tests.support.catalog import reset_database, snapshot
from tests.support.ordering import placed


def test_products_are_listed_with_their_current_stock(api, catalog):
    placed(api, (catalog.products["af1"], 2))

    products = api.get("/products").json()

    assert [p["id"] for p in products] == sorted(catalog.products.values())
    af1 = next(p for p in products if p["id"] == catalog.products["af1"])
    assert (af1["sku"], af1["price"], af1["stock"], af1["active"]) == ("NK-AF1-07-WHT-270", 139000, 18, True)


def test_products_can_be_filtered_by_sku(api, catalog):
    assert [p["id"] for p in api.get("/products", params={"sku": "NK-AF1-07-WHT-270"}).json()] == [
        catalog.products["af1"]
    ]
    assert api.get("/products", params={"sku": "NOPE"}).json() == []


def test_one_product_or_a_404_problem(api, catalog):
    assert api.get(f"/products/{catalog.products['retired']}").json()["active"] is False
    missing = api.get("/products/9999")
    assert (missing.status_code, missing.json()["code"]) == (404, "PRODUCT_NOT_FOUND")


def test_the_demo_catalog_is_worth_looking_at():
    demo = demo_catalog()

    active = [p for p in demo.products if p.active]
    assert len(demo.products) >= 30
    assert len({p.name for p in demo.products}) >= 8
    assert all(
        len({p.size for p in demo.products if p.name == name}) >= 3 for name in {p.name for p in active if p.stock > 5}
    )
    assert any(p.stock <= 3 and p.active for p in demo.products), "a scarce limited drop"
    assert any(not p.active for p in demo.products)
    kinds = {c.code: c for c in demo.coupons}
    assert any(c.discount_type == "FIXED" and c.min_order_amount == 0 for c in kinds.values())
    assert any(c.discount_type == "PERCENT" and c.max_discount for c in kinds.values())
    assert any(c.min_order_amount > 0 for c in kinds.values())
    assert any(c.expires_at and c.expires_at.year < 2026 for c in kinds.values()), "an expired coupon"
    assert any(c.usage_limit == 0 for c in kinds.values()), "an exhausted coupon"


@pytest.fixture
def cli_database(monkeypatch, database_url, db):
    """The CLI reads DATABASE_URL like any other process; tables start empty."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    reset_database(db)


def test_seeding_the_demo_catalog_twice_is_safe(cli_database, db):
    # Every column but updated_at, which moves on an upsert.
    products = "SELECT id, sku, name, brand, size, price, stock, active, max_per_customer FROM products ORDER BY id"
    assert main(["seed"]) == 0
    first = db.execute(products).fetchall()
    coupons = len(snapshot(db)["coupons"])

    assert main(["seed"]) == 0

    assert db.execute(products).fetchall() == first
    assert len(snapshot(db)["coupons"]) == coupons


def test_a_catalog_file_upserts_by_sku_and_code(cli_database, db, tmp_path):
    main(["seed"])
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(
        json.dumps(
            {
                "products": [
                    {
                        "sku": "NK-AF1-07-WHT-270",
                        "name": "AF1 restock",
                        "brand": "Nike",
                        "size": "270",
                        "price": 149000,
                        "stock": 99,
                    },
                    {
                        "sku": "NEW-SKU-1",
                        "name": "New",
                        "brand": "Brand",
                        "size": "255",
                        "price": 1000,
                        "stock": 1,
                        "active": False,
                    },
                ],
                "coupons": [
                    {"code": "WELCOME5000", "discount_type": "FIXED", "discount_value": 7000, "min_order_amount": 0},
                ],
            }
        )
    )

    assert main(["seed", str(catalog_file)]) == 0

    assert db.execute("SELECT name, price, stock, active FROM products WHERE sku = 'NK-AF1-07-WHT-270'").fetchone() == (
        "AF1 restock",
        149000,
        99,
        True,
    )
    assert db.execute("SELECT active FROM products WHERE sku = 'NEW-SKU-1'").fetchone() == (False,)
    assert db.execute("SELECT discount_value FROM coupons WHERE code = 'WELCOME5000'").fetchone() == (7000,)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"products": [{"sku": "A", "name": "n", "brand": "b", "size": 270, "price": 1, "stock": 1}]}, "size"),
        ({"products": [{"sku": "A", "name": "n", "brand": "b", "size": "1", "price": -1, "stock": 1}]}, "price"),
        (
            {
                "products": [
                    {"sku": "A", "name": "n", "brand": "b", "size": "1", "price": 1, "stock": 1, "colour": "red"}
                ]
            },
            "colour",
        ),
        ({"coupons": [{"code": "P", "discount_type": "PERCENT", "discount_value": 101, "min_order_amount": 0}]}, "100"),
        (
            {"coupons": [{"code": "P", "discount_type": "HALF", "discount_value": 1, "min_order_amount": 0}]},
            "discount_type",
        ),
        (
            {
                "coupons": [
                    {
                        "code": "P",
                        "discount_type": "FIXED",
                        "discount_value": 1,
                        "min_order_amount": 0,
                        "expires_at": "2026-01-01T00:00:00",
                    }
                ]
            },
            "timezone",
        ),
        (
            {"products": [{"sku": "A", "name": "n", "brand": "b", "size": "1", "price": 1, "stock": 1}] * 2},
            "more than once",
        ),
        ("not json", "json"),
        (
            {
                "products": [
                    {"sku": "A", "name": "n", "brand": "b", "size": "1", "price": 1, "stock": 1, "max_per_customer": 0}
                ]
            },
            "max_per_customer",
        ),
    ],
)
def test_a_catalog_file_that_does_not_fit_is_refused_whole(cli_database, db, tmp_path, capsys, content, reason):
    main(["seed"])
    before = snapshot(db)
    good_line = {"sku": "GOOD-1", "name": "good", "brand": "b", "size": "1", "price": 1, "stock": 1}
    if isinstance(content, dict):
        content = {**content, "products": [good_line, *content.get("products", [])]}
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(content if isinstance(content, str) else json.dumps(content))

    assert main(["seed", str(catalog_file)]) == 2

    assert reason.lower() in capsys.readouterr().err.lower()
    assert snapshot(db) == before


def test_a_coupon_limit_below_its_uses_is_refused_by_the_database(cli_database, db, tmp_path, capsys):
    main(["seed"])
    db.execute("UPDATE coupons SET used_count = 3 WHERE code = 'SNEAKER10'")
    before = snapshot(db)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(
        json.dumps(
            {
                "coupons": [
                    {
                        "code": "SNEAKER10",
                        "discount_type": "PERCENT",
                        "discount_value": 10,
                        "min_order_amount": 0,
                        "usage_limit": 2,
                    }
                ]
            }
        )
    )

    assert main(["seed", str(catalog_file)]) == 2

    assert "used_within_limit" in capsys.readouterr().err
    assert snapshot(db) == before


def test_seeding_if_empty_leaves_an_existing_catalog_alone(cli_database, db):
    main(["seed"])
    db.execute("UPDATE products SET stock = 1")
    before = snapshot(db)

    assert main(["seed", "--if-empty"]) == 0

    assert snapshot(db) == before


def test_a_catalog_file_may_limit_the_pairs_per_customer(cli_database, db, tmp_path):
    catalog_file = tmp_path / "catalog.json"
    line = {"sku": "DROP-1", "name": "Drop", "brand": "b", "size": "270", "price": 1000, "stock": 3}
    catalog_file.write_text(json.dumps({"products": [{**line, "max_per_customer": 2}, {**line, "sku": "FREE-1"}]}))

    assert main(["seed", str(catalog_file)]) == 0

    limits = dict(db.execute("SELECT sku, max_per_customer FROM products").fetchall())
    assert limits == {"DROP-1": 2, "FREE-1": None}


def test_the_demo_catalogs_limited_drop_is_one_pair_per_customer():
    [drop] = [product for product in demo_catalog().products if product.sku == "AJ1-HI-OG-CHICAGO-270"]

    assert (drop.stock, drop.max_per_customer) == (3, 1)
