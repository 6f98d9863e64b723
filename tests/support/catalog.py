"""The catalog every order test starts from, and views of the tables for assertions."""

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from db.tables import metadata

# Every table of the schema, emptied between tests.
TABLES = tuple(table.name for table in metadata.sorted_tables)

PRODUCTS = {
    # name: (sku, price, stock, active)
    "af1": ("NK-AF1-07-WHT-270", 139000, 20, True),
    "dunk": ("NK-DUNK-LOW-PANDA-270", 129000, 20, True),
    "samba": ("AD-SAMBA-OG-BLK-260", 139000, 20, True),
    "limited": ("AJ1-HI-OG-CHICAGO-270", 239000, 10, True),
    "retired": ("NK-AM97-SILVER-270", 219000, 5, False),
}

COUPONS = {
    # name: (code, type, value, max_discount, min_order_amount, starts_at, expires_at, usage_limit, active)
    "fixed": ("WELCOME5000", "FIXED", 5000, None, 0, None, None, None, True),
    "percent_capped": ("SNEAKER10", "PERCENT", 10, 20000, 0, None, None, None, True),
    "percent_odd": ("ODD7", "PERCENT", 7, None, 0, None, None, None, True),
    "min_amount": ("BIGORDER30K", "FIXED", 30000, None, 300000, None, None, None, True),
    "expired": ("SUMMER2025", "PERCENT", 15, None, 0, "2025-06-01T00:00+09", "2025-09-01T00:00+09", None, True),
    "not_started": ("NEWYEAR2031", "FIXED", 10000, None, 0, "2031-01-01T00:00+09", None, None, True),
    "disabled": ("STAFFONLY", "PERCENT", 30, None, 0, None, None, None, False),
    "exhausted": ("FIRSTDROP", "FIXED", 20000, None, 0, None, None, 0, True),
    "five_uses": ("FIVEONLY", "FIXED", 1000, None, 0, None, None, 5, True),
}


def reset_database(db: psycopg.Connection) -> None:
    """Empty every table and restart the ids; events go to one destination, `platform`, as after the migrations."""
    db.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    db.execute("INSERT INTO destinations (name) VALUES ('platform')")


@dataclass(frozen=True)
class SeededCatalog:
    """Ids of the test products and coupons, by name."""

    products: dict[str, int]
    coupons: dict[str, int]

    @classmethod
    def insert(cls, db: psycopg.Connection) -> "SeededCatalog":
        products = {
            name: db.execute(
                "INSERT INTO products (sku, name, brand, size, price, stock, active)"
                " VALUES (%s, %s, 'Test', '270', %s, %s, %s) RETURNING id",
                (sku, name, price, stock, active),
            ).fetchone()[0]
            for name, (sku, price, stock, active) in PRODUCTS.items()
        }
        coupons = {
            name: db.execute(
                "INSERT INTO coupons (code, discount_type, discount_value, max_discount, min_order_amount,"
                " starts_at, expires_at, usage_limit, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                values,
            ).fetchone()[0]
            for name, values in COUPONS.items()
        }
        return cls(products, coupons)


def stock_of(db: psycopg.Connection, product_id: int) -> int:
    return db.execute("SELECT stock FROM products WHERE id = %s", (product_id,)).fetchone()[0]


def used_count_of(db: psycopg.Connection, coupon_id: int) -> int:
    return db.execute("SELECT used_count FROM coupons WHERE id = %s", (coupon_id,)).fetchone()[0]


def count_rows(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def snapshot(db: psycopg.Connection) -> dict[str, list[tuple]]:
    """Every row of every table, to show that a request changed nothing."""
    return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}


def events_of(db: psycopg.Connection, order_id: int) -> list[dict]:
    """The outbox rows of one order, in sequence, each with its delivery's status and retry count at `platform`."""
    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT event.*, delivery.status, delivery.retry_count FROM order_events AS event"
            " LEFT JOIN event_deliveries AS delivery ON delivery.id = event.id AND delivery.destination = 'platform'"
            " WHERE event.aggregate_type = 'order' AND event.aggregate_id = %s ORDER BY event.sequence",
            (str(order_id),),
        ).fetchall()
