"""The catalog with current stock."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import EngineDep
from api.openapi import problems
from api.problems import ApiProblem
from api.schemas import PRINTABLE, ProductIdInPath
from db.catalog.products import ProductView, find_product, list_products

router = APIRouter(prefix="/products", tags=["catalog"])


@router.get("", responses=problems(422, 503))
async def get_products(
    engine: EngineDep,
    sku: Annotated[
        str | None, Query(max_length=64, pattern=PRINTABLE, description="only the product with this SKU")
    ] = None,
) -> list[ProductView]:
    """Every product, with its current stock and how many pairs one customer may hold."""
    return await list_products(engine, sku)


@router.get("/{product_id}", responses=problems(404, 422, 503))
async def get_product(
    product_id: Annotated[ProductIdInPath, Path(description="the product's id (decimal digits)")], engine: EngineDep
) -> ProductView:
    """One product, with its current stock."""
    product = await find_product(engine, product_id)
    if product is None:
        raise ApiProblem(404, "PRODUCT_NOT_FOUND", f"product {product_id} does not exist")
    return product
