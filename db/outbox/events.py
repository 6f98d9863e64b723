"""The one writer of order events: every event, OrderCreated included, is appended here, serialised once.

The statement is written for the driver (psycopg's `%(name)s` parameters) so that it runs as it is
both through SQLAlchemy (`append_order_event`) and inside the placement's pipeline (with `event_parameters`).
"""

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from db.statuses import EventType


class OrderSnapshot(Protocol):
    """What an event's payload is made of: an order as `GET /orders/{id}` shows it (db.orders.view.OrderView).

    A protocol, not the class, so that the outbox stays below the order domain that writes into it.
    """

    order_id: int

    def model_dump_json(self) -> str: ...


ORDER_AGGREGATE = "order"


def with_order_id_sql(order_json: str, order_id: str) -> str:
    """SQL: the text of an order's JSON with `order_id` in it instead of the id it has; the one way it is put in.

    `order_json`: an SQL expression (a parameter: `%(name)s`) of an OrderView's JSON, which starts with
    its order_id (Pydantic writes fields in their order). `order_id`: an SQL expression of the id. The
    rest of the text is kept byte for byte, so the order placed is answered exactly as Pydantic wrote it.
    """
    text = f"CAST({order_json} AS text)"
    return f"""('{{"order_id":' || ({order_id}) || substr({text}, strpos({text}, ',')))"""


# The sequence is the order's own counter (orders.last_event_sequence), moved on by the same
# statement: it stays right when retention has deleted old events, and the update locks the order
# row, so the writers of one order take their numbers one after the other. No order row (a
# placement that did not happen), no event.
#
# Without an order_id the order is the one whose id this transaction took last (currval of the
# orders' id sequence): a placement appends its OrderCreated in the same round trip as the insert,
# before it knows the id. The payload's order_id is always the id of the order numbered here.
APPEND_ORDER_EVENT = f"""
WITH numbered AS (
    UPDATE orders SET last_event_sequence = last_event_sequence + 1
    WHERE id = (SELECT coalesce(CAST(%(order_id)s AS bigint), currval(pg_get_serial_sequence('orders', 'id'))))
    RETURNING id, last_event_sequence
)
INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload, created_at,
                          traceparent)
SELECT %(event_id)s, %(aggregate_type)s, numbered.id::text, numbered.last_event_sequence, %(event_type)s,
       CAST({with_order_id_sql("%(payload)s", "numbered.id")} AS jsonb), %(occurred_at)s, %(traceparent)s
FROM numbered
RETURNING event_id
"""


def event_parameters(
    order_id: int | None, payload: str, event_type: EventType, occurred_at: datetime, *, traceparent: str | None = None
) -> dict[str, Any]:
    """The parameters of APPEND_ORDER_EVENT for `event_type` of order `order_id` with `payload`, an OrderView's JSON.

    `order_id` None: the order whose id the running transaction took last. `traceparent` (W3C) names
    the span that writes the event, when its process traces: the span of each delivery attempt will
    be its child.
    """
    return {
        "order_id": order_id,
        "event_id": uuid.uuid4(),
        "aggregate_type": ORDER_AGGREGATE,
        "event_type": event_type,
        "payload": payload,
        "occurred_at": occurred_at,
        "traceparent": traceparent,
    }


async def append_order_event(
    connection: AsyncConnection,
    order: OrderSnapshot,
    event_type: EventType,
    occurred_at: datetime,
    *,
    traceparent: str | None = None,
) -> uuid.UUID:
    """Write `event_type` for `order` as PENDING in the caller's transaction (traced as `traceparent`); its event_id."""
    parameters = event_parameters(
        order.order_id, order.model_dump_json(), event_type, occurred_at, traceparent=traceparent
    )
    event_id = (await connection.exec_driver_sql(APPEND_ORDER_EVENT, parameters)).scalar()
    if event_id is None:
        raise LookupError(f"order {order.order_id} does not exist; no event written for it")
    return event_id
