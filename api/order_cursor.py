"""The `cursor` of GET /orders: an opaque token naming where the previous page ended."""

import base64
import binascii
import json
from datetime import datetime

from fastapi.exceptions import RequestValidationError

from api.schemas import BIGINT_MAX
from db.orders.listing import OrderCursor

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"


def encode_cursor(cursor: OrderCursor) -> str:
    """The token of `cursor`: URL-safe base64 of its JSON, unpadded."""
    text = json.dumps([cursor.created_at.isoformat(), cursor.order_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> OrderCursor:
    """The cursor a token names; a token this API did not make is a 422 VALIDATION_ERROR."""
    try:
        created_at, order_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = OrderCursor(datetime.fromisoformat(created_at), order_id)
        if cursor.created_at.tzinfo is None or type(order_id) is not int or not 0 <= order_id <= BIGINT_MAX:
            raise ValueError
        return cursor
    except (binascii.Error, ValueError, TypeError):
        problem = {"loc": ("query", "cursor"), "msg": "not a cursor of a previous page", "type": "value_error"}
        raise RequestValidationError([problem]) from None
