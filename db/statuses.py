"""The one vocabulary of each state machine: order and event statuses, attempt outcomes, operator actions.

The CHECK constraints, the API literals, the CLI choices and the metrics all take them from here.
"""

from typing import Literal, get_args

OrderStatus = Literal["CREATED", "CONFIRMED", "CANCELLED", "EXPIRED"]
EventStatus = Literal["PENDING", "PROCESSING", "SENT", "FAILED"]
EventType = Literal["OrderCreated", "OrderConfirmed", "OrderCancelled", "OrderExpired"]
OperatorAction = Literal["REDRIVE", "RETRY_NOW", "REPLAY", "DISCARD"]

ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
EVENT_STATUSES: tuple[str, ...] = get_args(EventStatus)
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
OPERATOR_ACTIONS: tuple[str, ...] = get_args(OperatorAction)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression: `column` is one of `values`."""
    return f"{column} IN ({', '.join(repr(value) for value in values)})"
