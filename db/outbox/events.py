"""Appending an order event to the outbox inside the caller's transaction."""

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders.view import OrderView

ORDER_AGGREGATE = "order"

# The sequence is the next number of this order's events. Writers of one order are serialized by
# the lock they hold on the order row (a new order is not yet visible to anyone), and the unique
# (aggregate, sequence) index refuses a gap-filling race should that ever change.
_APPEND = text(
    """
    INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, created_at)
    VALUES (
        :event_id, :aggregate_type, :aggregate_id,
        (SELECT coalesce(max(sequence), 0) + 1 FROM order_events
          WHERE aggregate_type = :aggregate_type AND aggregate_id = :aggregate_id),
        :event_type, CAST(:payload AS jsonb), :occurred_at
    )
    RETURNING event_id
    """
)


async def append_order_event(
    connection: AsyncConnection, order: OrderView, event_type: str, occurred_at: datetime
) -> uuid.UUID:
    """Write `event_type` for `order` as PENDING, its payload the order as it now is."""
    return await connection.scalar(
        _APPEND,
        {
            "event_id": uuid.uuid4(),
            "aggregate_type": ORDER_AGGREGATE,
            "aggregate_id": str(order.order_id),
            "event_type": event_type,
            "payload": order.model_dump_json(),
            "occurred_at": occurred_at,
        },
    )
