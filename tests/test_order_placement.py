"""POST /orders: one transaction takes stock and coupon use, saves the order and its PENDING event."""

import uuid
from datetime import datetime, timedelta

import pytest

from tests.support.catalog import count_rows, events_of, reset_database, snapshot, stock_of, used_count_of


def place(api, items, coupon_id=None, **kwargs):
    return api.post("/orders", json={"items": items, "coupon_id": coupon_id}, **kwargs)


def test_a_placed_order_is_created_with_its_stock_taken_and_a_pending_event(api, db, catalog):
    af1, dunk = catalog.products["af1"], catalog.products["dunk"]

    response = place(api, [{"product_id": af1, "quantity": 2}, {"product_id": dunk, "quantity": 1}])

    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['order_id']}"
    assert (order["status"], order["customer_id"]) == ("CREATED", "customer-1")
    assert order["items"] == [
        {"product_id": af1, "quantity": 2, "unit_price": 139000, "line_total": 278000},
        {"product_id": dunk, "quantity": 1, "unit_price": 129000, "line_total": 129000},
    ]
    assert (order["subtotal"], order["discount"], order["total"]) == (407000, 0, 407000)
    assert (stock_of(db, af1), stock_of(db, dunk)) == (18, 19)
    [event] = events_of(db, order["order_id"])
    assert (event["event_type"], event["status"], event["sequence"]) == ("OrderCreated", "PENDING", 1)
    assert isinstance(event["event_id"], uuid.UUID)
    assert event["payload"] == api.get(f"/orders/{order['order_id']}").json() == order
    # The body is the order's JSON as Pydantic wrote it, its id put in by the write (with_order_id_sql).
    assert response.text.startswith(f'{{"order_id":{order["order_id"]},"status":"CREATED","customer_id":')


def test_lines_naming_the_same_product_twice_are_merged(api, db, catalog):
    af1 = catalog.products["af1"]

    response = place(api, [{"product_id": af1, "quantity": 1}, {"product_id": af1, "quantity": 2}])

    assert response.status_code == 201
    assert response.json()["items"] == [{"product_id": af1, "quantity": 3, "unit_price": 139000, "line_total": 417000}]
    assert stock_of(db, af1) == 17


@pytest.mark.parametrize(
    ("coupon", "quantity", "discount"),
    [
        ("fixed", 1, 5000),
        ("percent_capped", 1, 13900),  # 10% of 139,000
        ("percent_capped", 3, 20000),  # 10% of 417,000 is 41,700: capped at 20,000
        ("percent_odd", 1, 9730),  # 7% of 139,000
        ("min_amount", 3, 30000),  # 417,000 meets the 300,000 minimum
    ],
)
def test_a_coupon_discount_is_applied_and_its_use_counted(api, db, catalog, coupon, quantity, discount):
    coupon_id = catalog.coupons[coupon]

    response = place(api, [{"product_id": catalog.products["af1"], "quantity": quantity}], coupon_id=coupon_id)

    assert response.status_code == 201
    order = response.json()
    assert (order["coupon_id"], order["discount"], order["total"]) == (
        coupon_id,
        discount,
        139000 * quantity - discount,
    )
    assert used_count_of(db, coupon_id) == 1


def test_a_percent_discount_rounds_down_to_the_won(api, db):
    reset_database(db)
    product = db.execute(
        "INSERT INTO products (sku, name, brand, size, price, stock)"
        " VALUES ('ODD', 'odd', 'x', '1', 9999, 5) RETURNING id"
    ).fetchone()[0]
    coupon = db.execute(
        "INSERT INTO coupons (code, discount_type, discount_value, min_order_amount) VALUES ('P15', 'PERCENT', 15, 0)"
        " RETURNING id"
    ).fetchone()[0]

    order = place(api, [{"product_id": product, "quantity": 1}], coupon_id=coupon).json()

    assert order["discount"] == 1499  # 15% of 9,999 is 1,499.85
    assert order["total"] == 8500


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown product", "PRODUCT_NOT_FOUND"),
        ("inactive product", "PRODUCT_UNAVAILABLE"),
        ("short stock", "INSUFFICIENT_STOCK"),
        ("short stock on the second line", "INSUFFICIENT_STOCK"),
        ("a line over MAX_PAIRS_PER_LINE", "LINE_PAIRS_EXCEEDED"),
        ("an order over MAX_PAIRS_PER_ORDER", "ORDER_PAIRS_EXCEEDED"),
        ("unknown coupon", "COUPON_NOT_FOUND"),
        ("expired coupon", "COUPON_NOT_ACTIVE"),
        ("coupon not started", "COUPON_NOT_ACTIVE"),
        ("disabled coupon", "COUPON_NOT_ACTIVE"),
        ("minimum amount not met", "COUPON_MIN_AMOUNT_NOT_MET"),
        ("exhausted coupon", "COUPON_EXHAUSTED"),
    ],
)
def test_a_broken_rule_answers_400_and_leaves_every_table_unchanged(api, db, catalog, case, code):
    p, c = catalog.products, catalog.coupons
    one_af1 = [{"product_id": p["af1"], "quantity": 1}]
    items, coupon_id = {
        "unknown product": ([{"product_id": 9999, "quantity": 1}], None),
        "inactive product": ([{"product_id": p["retired"], "quantity": 1}], None),
        "short stock": ([{"product_id": p["limited"], "quantity": 10}], None),
        "short stock on the second line": (one_af1 + [{"product_id": p["limited"], "quantity": 10}], None),
        "a line over MAX_PAIRS_PER_LINE": ([{"product_id": p["af1"], "quantity": 11}], None),
        "an order over MAX_PAIRS_PER_ORDER": (
            [{"product_id": p[name], "quantity": 7} for name in ("af1", "dunk", "samba")],
            None,
        ),
        "unknown coupon": (one_af1, 9999),
        "expired coupon": (one_af1, c["expired"]),
        "coupon not started": (one_af1, c["not_started"]),
        "disabled coupon": (one_af1, c["disabled"]),
        "minimum amount not met": (one_af1, c["min_amount"]),
        "exhausted coupon": (one_af1, c["exhausted"]),
    }[case]
    db.execute("UPDATE products SET stock = 9 WHERE id = %s", (p["limited"],))  # short of a line's 10
    before = snapshot(db)

    response = place(api, items, coupon_id=coupon_id)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (400, code)
    assert problem["detail"]
    assert snapshot(db) == before


@pytest.mark.parametrize("failing_table", ["products", "order_items", "order_events"])
def test_a_failure_inside_the_transaction_rolls_everything_back(api, db, catalog, failing_table):
    """A fault after the stock was taken (an AFTER UPDATE on products, or a later insert) leaves no trace."""
    timing = "AFTER UPDATE" if failing_table == "products" else "AFTER INSERT"
    db.execute(
        "CREATE FUNCTION fail_for_test() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected failure on %', TG_TABLE_NAME; END $$"
    )
    db.execute(
        f"CREATE TRIGGER fail_for_test {timing} ON {failing_table} FOR EACH ROW EXECUTE FUNCTION fail_for_test()"
    )
    try:
        before = snapshot(db)
        response = place(
            api, [{"product_id": catalog.products["af1"], "quantity": 2}], coupon_id=catalog.coupons["five_uses"]
        )
        assert response.status_code == 500
        assert response.json()["code"] == "INTERNAL_ERROR"
        assert snapshot(db) == before
    finally:
        db.execute(f"DROP TRIGGER fail_for_test ON {failing_table}")
        db.execute("DROP FUNCTION fail_for_test()")


def test_amounts_are_decided_by_the_server_not_the_client(api, db, catalog):
    response = api.post(
        "/orders",
        json={"items": [{"product_id": catalog.products["af1"], "quantity": 1, "unit_price": 1}]},
    )

    assert response.status_code == 422
    assert count_rows(db, "orders") == 0


def test_the_customer_is_the_tokens_not_the_bodys(api, db, catalog):
    response = api.post(
        "/orders",
        json={"customer_id": "someone-else", "items": [{"product_id": catalog.products["af1"], "quantity": 1}]},
    )

    assert response.status_code == 422
    assert count_rows(db, "orders") == 0


def test_the_order_is_due_for_payment_within_its_ttl(api, catalog):
    order = place(api, [{"product_id": catalog.products["af1"], "quantity": 1}]).json()

    created, expires = (datetime.fromisoformat(order[name]) for name in ("created_at", "expires_at"))
    assert expires - created == timedelta(seconds=900)
