"""The expiry's activity: expire overdue unpaid orders in short transactions, unless the schedule is paused."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.schedule_pause import SchedulePauseWatch
from db.orders.expiry import expire_due_orders
from sneaker_orders.tracing import current_traceparent

# Between two looks at the schedule's pause state, at most this many orders expire.
ORDERS_BETWEEN_PAUSE_CHECKS = 20


@dataclass
class ExpireDueOrders:
    """Expire up to `limit` overdue orders, for the run of `schedule_id` (none: started by hand)."""

    limit: int
    schedule_id: str | None = None


@dataclass
class ExpiredOrders:
    """The orders this activity expired, and whether it stopped because the schedule is paused."""

    order_ids: list[int] = field(default_factory=list)
    paused: bool = False


class OrderExpiryActivities:
    """Activities bound to the worker's engine and its view of the schedules' pause state."""

    def __init__(self, engine: AsyncEngine, pause: SchedulePauseWatch) -> None:
        self._engine = engine
        self._pause = pause

    @activity.defn
    async def expire_due_orders(self, request: ExpireDueOrders) -> ExpiredOrders:
        """Expire overdue CREATED orders, a few at a time, checking the pause before each few."""
        # A retried attempt starts from what the failed one had already expired, so the run still names them.
        details = activity.info().heartbeat_details
        expired: list[int] = list(details[0]) if details else []
        while len(expired) < request.limit:
            if await self._pause.is_paused(request.schedule_id):
                return ExpiredOrders(expired, paused=True)
            wanted = min(ORDERS_BETWEEN_PAUSE_CHECKS, request.limit - len(expired))
            chunk = await expire_due_orders(self._engine, limit=wanted, traceparent=current_traceparent())
            expired += chunk
            activity.heartbeat(expired)
            if len(chunk) < wanted:  # nothing more is due
                break
        return ExpiredOrders(expired)
