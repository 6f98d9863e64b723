"""Reading the catalog: products with their current stock."""

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.tables import products


class ProductView(BaseModel):
    """A product (one model in one size) as the catalog shows it."""

    id: int
    sku: str
    name: str
    brand: str
    size: str
    price: int
    stock: int
    active: bool
    max_per_customer: int | None = Field(
        description="pairs one customer may hold across unpaid and paid orders; null: no limit"
    )


_ALL = select(*(products.c[name] for name in ProductView.model_fields)).order_by(products.c.id)
_BY_SKU = _ALL.where(products.c.sku == bindparam("sku"))
_BY_ID = _ALL.where(products.c.id == bindparam("product_id"))


async def list_products(engine: AsyncEngine, sku: str | None = None) -> list[ProductView]:
    """Every product in id order, or the one with `sku`."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(_ALL) if sku is None else await connection.execute(_BY_SKU, {"sku": sku})
        return [ProductView(**row._mapping) for row in rows]


async def find_product(engine: AsyncEngine, product_id: int) -> ProductView | None:
    """The product with `product_id`, if there is one."""
    async with autocommit_connection(engine) as connection:
        row = (await connection.execute(_BY_ID, {"product_id": product_id})).one_or_none()
    return None if row is None else ProductView(**row._mapping)
