"""The `cursor` of GET /orders: where the previous page ended, as `<created_at, µs since the epoch>-<order id>`.

Its whole form is the schema's pattern, and every string of that form is a cursor: no value the
schema allows is refused.
"""

from datetime import UTC, datetime, timedelta

from db.orders.listing import OrderCursor

# At most 17 digits of microseconds (up to the year 5138) and 18 of order id (below BIGINT's maximum).
CURSOR_PATTERN = r"^[0-9]{1,17}-[0-9]{1,18}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(cursor: OrderCursor) -> str:
    """The token of `cursor`."""
    microseconds = (cursor.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{microseconds}-{cursor.order_id}"


def decode_cursor(token: str) -> OrderCursor:
    """The cursor a token of CURSOR_PATTERN's form names."""
    microseconds, order_id = token.split("-")
    return OrderCursor(_EPOCH + timedelta(microseconds=int(microseconds)), int(order_id))
