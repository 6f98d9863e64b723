"""Reading the catalog: products with their current stock."""

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

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


_COLUMNS = [products.c[name] for name in ProductView.model_fields]


async def list_products(engine: AsyncEngine, sku: str | None = None) -> list[ProductView]:
    """Every product in id order, or the one with `sku`."""
    query = select(*_COLUMNS).order_by(products.c.id)
    if sku is not None:
        query = query.where(products.c.sku == sku)
    async with engine.connect() as connection:
        return [ProductView(**row._mapping) for row in await connection.execute(query)]


async def find_product(engine: AsyncEngine, product_id: int) -> ProductView | None:
    """The product with `product_id`, if there is one."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(*_COLUMNS).where(products.c.id == product_id))).one_or_none()
    return None if row is None else ProductView(**row._mapping)
