"""Stock: locking products in id order, and giving stock back."""

from sqlalchemy import Integer, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.pricing import OrderLine, ProductForSale
from db.tables import products

_PRODUCTS = select(
    products.c.id, products.c.price, products.c.stock, products.c.active, products.c.max_per_customer
).where(products.c.id == any_(bindparam("ids", type_=ARRAY(Integer))))
# Every transaction that locks several products locks them in id order, so two of them naming the
# same products in any order queue behind each other instead of deadlocking.
_LOCK_PRODUCTS = _PRODUCTS.order_by(products.c.id).with_for_update()

_RETURN_STOCK = text(
    """
    UPDATE products SET stock = products.stock + line.quantity
    FROM unnest(CAST(:product_ids AS integer[]), CAST(:quantities AS integer[])) AS line(product_id, quantity)
    WHERE products.id = line.product_id
    """
)


async def lock_products(connection: AsyncConnection, product_ids: list[int]) -> dict[int, ProductForSale]:
    """Lock the named products until the transaction ends and return what is known of them."""
    return _by_id(await connection.execute(_LOCK_PRODUCTS, {"ids": product_ids}))


async def return_stock(connection: AsyncConnection, lines: list[OrderLine]) -> None:
    """Give the quantities of `lines` back to stock (the products must already be locked)."""
    await connection.execute(
        _RETURN_STOCK,
        {"product_ids": [line.product_id for line in lines], "quantities": [line.quantity for line in lines]},
    )


def _by_id(rows) -> dict[int, ProductForSale]:
    return {row.id: ProductForSale(row.id, row.price, row.stock, row.active, row.max_per_customer) for row in rows}
