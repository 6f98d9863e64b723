"""Catalog files: products upserted by sku and coupons by code, all of a file or none of it."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import create_engine
from db.tables import coupons, products

Won = Annotated[int, Field(ge=0, le=2_000_000_000)]


class CatalogRefused(Exception):
    """The catalog file does not fit; nothing was changed."""


class ProductEntry(BaseModel):
    """One product line of a catalog file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1)]
    brand: Annotated[str, Field(min_length=1)]
    size: Annotated[str, Field(min_length=1, max_length=16)]
    price: Won
    stock: Won
    active: bool = True
    # Pairs one customer may hold across unpaid and paid orders; omitted or null: no limit.
    max_per_customer: Annotated[int, Field(ge=1, le=1000)] | None = None


class CouponEntry(BaseModel):
    """One coupon of a catalog file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: Annotated[str, Field(min_length=1, max_length=64)]
    discount_type: Literal["FIXED", "PERCENT"]
    discount_value: Annotated[int, Field(gt=0, le=2_000_000_000)]
    max_discount: Won | None = None
    min_order_amount: Won
    starts_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    usage_limit: Won | None = None
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> "CouponEntry":
        if self.discount_type == "PERCENT" and self.discount_value > 100:
            raise ValueError(f"coupon {self.code}: a PERCENT discount is at most 100")
        if self.starts_at and self.expires_at and self.starts_at >= self.expires_at:
            raise ValueError(f"coupon {self.code}: starts_at must be before expires_at")
        return self


class CatalogFile(BaseModel):
    """The whole file: products and coupons."""

    model_config = ConfigDict(extra="forbid", strict=True)

    products: list[ProductEntry] = []
    coupons: list[CouponEntry] = []

    @model_validator(mode="after")
    def _unique_keys(self) -> "CatalogFile":
        for kind, keys in (("sku", [p.sku for p in self.products]), ("code", [c.code for c in self.coupons])):
            repeated = sorted({key for key in keys if keys.count(key) > 1})
            if repeated:
                raise ValueError(f"{kind} listed more than once: {', '.join(repeated)}")
        return self


@dataclass(frozen=True)
class SeedSummary:
    """How many rows a catalog file upserted."""

    products: int
    coupons: int


def demo_catalog() -> CatalogFile:
    """The demo catalog shipped with the project, in the catalog file format."""
    text = resources.files("db.catalog").joinpath("demo_catalog.json").read_text(encoding="utf-8")
    return parse_catalog(text, "demo catalog")


def parse_catalog(text: str, source: str) -> CatalogFile:
    """Validate a catalog file's text; raises CatalogRefused saying what does not fit."""
    try:
        return CatalogFile.model_validate_json(text)
    except ValidationError as error:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'file'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise CatalogRefused(f"{source} refused: {reasons}") from None


def read_catalog_file(path: Path) -> CatalogFile:
    """Read and validate a catalog file from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogRefused(f"{path}: {error.strerror}") from None
    return parse_catalog(text, str(path))


async def upsert_catalog(engine: AsyncEngine, catalog: CatalogFile) -> SeedSummary:
    """Insert or update every product (by sku) and coupon (by code) of `catalog` in one transaction."""
    try:
        async with engine.begin() as connection:
            if catalog.products:
                rows = [entry.model_dump() for entry in catalog.products]
                statement = insert(products).values(rows)
                changed = {name: statement.excluded[name] for name in ProductEntry.model_fields if name != "sku"}
                await connection.execute(
                    statement.on_conflict_do_update(index_elements=["sku"], set_={**changed, "updated_at": func.now()})
                )
            if catalog.coupons:
                rows = [entry.model_dump() for entry in catalog.coupons]
                statement = insert(coupons).values(rows)
                changed = {name: statement.excluded[name] for name in CouponEntry.model_fields if name != "code"}
                await connection.execute(
                    statement.on_conflict_do_update(index_elements=["code"], set_={**changed, "updated_at": func.now()})
                )
    except IntegrityError as error:
        raise CatalogRefused(f"catalog refused by the database: {error.orig}") from None
    return SeedSummary(products=len(catalog.products), coupons=len(catalog.coupons))


async def catalog_is_empty(engine: AsyncEngine) -> bool:
    """True before any product was ever seeded."""
    async with engine.connect() as connection:
        return not await connection.scalar(products.select().exists().select())


async def seed_catalog(database_url: str, catalog: CatalogFile, *, only_if_empty: bool = False) -> SeedSummary | None:
    """Upsert `catalog` into the database at `database_url`; None when `only_if_empty` and products exist."""
    engine = create_engine(database_url, pool_size=1)
    try:
        if only_if_empty and not await catalog_is_empty(engine):
            return None
        return await upsert_catalog(engine, catalog)
    finally:
        await engine.dispose()
