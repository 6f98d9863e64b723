"""Request bodies and path ids of the API, validated strictly: a malformed request is a 422, never a 500."""

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

# Printable text only: PostgreSQL refuses NUL bytes, and control characters have no business in ids.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

_DECIMAL_DIGITS = re.compile(r"[0-9]+")


def _plain_decimal(value: object) -> object:
    """A path id is decimal digits only: no sign, space, fraction, exponent or digit separator."""
    if isinstance(value, str) and not _DECIMAL_DIGITS.fullmatch(value):
        raise ValueError("an id is plain decimal digits")
    return value


def _integral(value: object) -> object:
    """JSON Schema's integer: a number with no fraction, written `30019` or `30019.0` alike; nothing else."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer of a body: strict (no strings, no booleans) but, as JSON Schema says, 1.0 is the integer 1. The
# constraints come first so that the schema states them as JSON Schema's (minimum, maximum).
Integral = BeforeValidator(_integral)
ProductId = Annotated[int, Field(ge=1, le=INT32_MAX), Integral]
IdempotencyKeyValue = Annotated[str, Field(min_length=1, max_length=255)]
CouponId = Annotated[int, Field(ge=1, le=INT32_MAX), Integral]
OrderId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
# Ids taken from a path (strings until validated): `/orders/+1`, `/orders/1.0`, `/orders/1_0` are 422.
ProductIdInPath = Annotated[ProductId, BeforeValidator(_plain_decimal)]
OrderIdInPath = Annotated[OrderId, BeforeValidator(_plain_decimal)]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OrderLineBody(_StrictBody):
    """One line of an order request."""

    product_id: ProductId
    quantity: Annotated[int, Field(ge=1, le=1000, description="pairs of this product, 1 to 1000"), Integral]


class PlaceOrderBody(_StrictBody):
    """`POST /orders`: what the customer wants; the customer is the token's, prices and discount the server's."""

    items: Annotated[
        list[OrderLineBody],
        Field(min_length=1, max_length=100, description="lines naming the same product twice are merged"),
    ]
    coupon_id: CouponId | None = None


class ConfirmOrderBody(_StrictBody):
    """`POST /orders/{id}/confirm`: the payment that completed, naming its order inside the signed body."""

    order_id: Annotated[
        OrderId, Field(description="the order paid; must equal the path's id (else 400 ORDER_ID_MISMATCH)")
    ]
    payment_id: Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
    amount: Annotated[int, Field(ge=0, le=BIGINT_MAX, description="KRW paid; must equal the order total"), Integral]


def body_errors(invalid: ValidationError) -> list[dict]:
    """A body's validation errors as FastAPI reports them for a body it parsed itself (located under "body")."""
    return [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
