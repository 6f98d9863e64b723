"""The one vocabulary of each state machine: order and event statuses, attempt outcomes, operator actions.

The CHECK constraints, the API literals, the CLI choices and the metrics all take them from here.
"""

from typing import Literal, get_args

OrderStatus = Literal["CREATED", "CONFIRMED", "CANCELLED", "EXPIRED"]
EventStatus = Literal["PENDING", "PROCESSING", "SENT", "FAILED"]
# What an operator action records as the delivery's status before it when there was none (a replay that gave
# a destination a delivery of an event written before it was added).
NoDelivery = Literal["NONE"]
EventType = Literal["OrderCreated", "OrderConfirmed", "OrderCancelled", "OrderExpired"]
OperatorAction = Literal["REDRIVE", "RETRY_NOW", "REPLAY", "DISCARD"]
# How one delivery attempt ended: SENT, RETRY (counted against the event's budget), FAILED; HELD is a
# failure while the platform failed for every event (an outage: not counted); LEASE_EXPIRED and STALE
# are attempts whose outcome came too late or never.
LoggedOutcome = Literal["SENT", "RETRY", "FAILED", "HELD", "LEASE_EXPIRED", "STALE"]
# The circuit breaker in front of the platform: CLOSED delivers, OPEN holds deliveries and probes.
BreakerState = Literal["CLOSED", "OPEN"]

ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
EVENT_STATUSES: tuple[str, ...] = get_args(EventStatus)
NO_DELIVERY: str = get_args(NoDelivery)[0]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
OPERATOR_ACTIONS: tuple[str, ...] = get_args(OperatorAction)
LOGGED_OUTCOMES: tuple[str, ...] = get_args(LoggedOutcome)
BREAKER_STATES: tuple[str, ...] = get_args(BreakerState)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression: `column` is one of `values`."""
    return f"{column} IN ({', '.join(repr(value) for value in values)})"
