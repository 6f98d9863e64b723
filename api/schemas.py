"""Request bodies of the API, validated strictly: a malformed body is a 422, never a 500."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

# Printable text only: PostgreSQL refuses NUL bytes, and control characters have no business in ids.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

ProductId = Annotated[int, Field(ge=1, le=INT32_MAX)]
CouponId = Annotated[int, Field(ge=1, le=INT32_MAX)]
OrderId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OrderLineBody(_StrictBody):
    """One line of an order request."""

    product_id: ProductId
    quantity: Annotated[int, Field(ge=1, le=1000, description="pairs of this product, 1 to 1000")]


class PlaceOrderBody(_StrictBody):
    """`POST /orders`: what the customer wants; prices, stock and discount are decided by the server."""

    customer_id: Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
    items: Annotated[
        list[OrderLineBody],
        Field(min_length=1, max_length=100, description="lines naming the same product twice are merged"),
    ]
    coupon_id: CouponId | None = None


class ConfirmOrderBody(_StrictBody):
    """`POST /orders/{id}/confirm`: the payment that completed."""

    payment_id: Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
    amount: Annotated[int, Field(ge=0, le=BIGINT_MAX, description="KRW paid; must equal the order total")]
