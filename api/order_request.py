"""What a `POST /orders` request says: its three headers, read in one pass, and its body, validated once.

The body and the Idempotency-Key are validated together, as FastAPI validates a route's parameters:
every problem of the request in one 422 VALIDATION_ERROR.
"""

from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from api.schemas import IdempotencyKeyValue, PlaceOrderBody, body_errors

_IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKeyValue)
_JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class OrderRequestHeaders:
    """The headers `POST /orders` reads (the first of each, as Starlette's `Request.headers.get`)."""

    authorization: str | None
    content_type: bytes | None
    idempotency_key: str | None


def order_request_headers(raw_headers: list[tuple[bytes, bytes]]) -> OrderRequestHeaders:
    """The request's Authorization, Content-Type and Idempotency-Key, from the ASGI scope's raw headers."""
    authorization = content_type = idempotency_key = None
    for name, value in raw_headers:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    return OrderRequestHeaders(authorization, content_type, idempotency_key)


async def request_body(receive) -> bytes:
    """The whole body of the request (ASGI `receive`); ClientDisconnect when the client left, as Starlette's."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def validated_order(headers: OrderRequestHeaders, body: bytes) -> tuple[PlaceOrderBody, str | None]:
    """The order asked for and its Idempotency-Key; every problem of both in one RequestValidationError (422)."""
    problems = []
    idempotency_key = headers.idempotency_key
    if idempotency_key is not None:
        try:
            idempotency_key = _IDEMPOTENCY_KEY.validate_python(idempotency_key)
        except ValidationError as invalid:
            problems += [{**error, "loc": ("header", "Idempotency-Key")} for error in invalid.errors(include_url=False)]
    order = None
    if not _is_json(headers.content_type):
        problems.append(
            {
                "type": "model_attributes_type",
                "loc": ("body",),
                "msg": "the body must be JSON (Content-Type: application/json)",
                "input": None,
            }
        )
    else:
        try:
            order = PlaceOrderBody.model_validate_json(body)
        except ValidationError as invalid:
            problems += body_errors(invalid)
    if problems:
        raise RequestValidationError(problems)
    return order, idempotency_key


def _is_json(content_type: bytes | None) -> bool:
    """application/json or application/*+json, parameters aside, as FastAPI requires of a JSON body."""
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == _JSON or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))
