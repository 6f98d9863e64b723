"""Order expiry: started by a schedule, a run has overdue unpaid orders expired and names each one it expired.

Every order a run expires goes into its `OrderIds` search attribute, so
`temporal workflow list -q "OrderIds = '42'"` finds the run that expired order 42; the run's
current details (and its result) say in words what it did. A run asks for no more orders than
the attribute can still name; when it is full, the run continues as new instead of dropping names.
"""

from dataclasses import dataclass, field, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from workflows.search_attributes import ORDER_IDS, SearchAttributeBudget

with workflow.unsafe.imports_passed_through():
    from activities.order_expiry import ExpireDueOrders, OrderExpiryActivities

# A database hiccup is worth a few retries; after that the run fails and the next tick starts afresh.
ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_attempts=5)
# The activity heartbeats after every few orders (milliseconds apart).
HEARTBEAT_TIMEOUT = timedelta(seconds=20)
EXPIRY_TIMEOUT = timedelta(minutes=2)
# Order ids are bigints: at most 19 digits. Room in the search attribute is reserved for ids this wide.
WIDEST_ORDER_ID = 10**18
ORDER_IDS_SHOWN = 20

NOTHING_MORE_DUE = "nothing more is due"
SCHEDULE_PAUSED = "the schedule is paused"
ATTRIBUTE_FULL = "the OrderIds search attribute is full: the next run of the chain goes on"


@dataclass
class OrderExpiryRun:
    """One scheduled run: expire in batches of `batch_size`, within the server's search-attribute limits."""

    schedule_id: str | None
    batch_size: int = 100
    search_attribute_value_limit_bytes: int = 2048
    search_attributes_total_limit_bytes: int = 40 * 1024
    # Orders expired by the earlier runs of a continue-as-new chain.
    expired_earlier: int = 0


@dataclass
class OrderExpiryReport:
    """What a run did: the orders it expired, why it stopped, and both in words."""

    expired_order_ids: list[int] = field(default_factory=list)
    stopped_because: str = ""
    summary: str = ""


@workflow.defn
class OrderExpiry:
    """Expires overdue unpaid orders through activities until none is due, or the schedule is paused."""

    def __init__(self) -> None:
        self._expired: list[int] = []

    @workflow.run
    async def run(self, run: OrderExpiryRun) -> OrderExpiryReport:
        budget = SearchAttributeBudget(run.search_attribute_value_limit_bytes, run.search_attributes_total_limit_bytes)
        # Room is reserved for the widest ids, so it shrinks batch after batch; below a quarter of a fresh
        # run's, a fresh run does better than a trickle of small batches.
        enough_room = max(1, _room_for_order_ids(budget, run.batch_size) // 4)
        while True:
            room = _room_for_order_ids(budget, run.batch_size)
            if room < enough_room or (self._expired and workflow.info().is_continue_as_new_suggested()):
                self._continue_as_new(run)
            batch = await workflow.execute_activity_method(
                OrderExpiryActivities.expire_due_orders,
                ExpireDueOrders(limit=room, schedule_id=run.schedule_id),
                start_to_close_timeout=EXPIRY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=f"expire up to {room} overdue unpaid orders",
            )
            if batch.order_ids:
                budget.upsert({ORDER_IDS: [str(order_id) for order_id in batch.order_ids]})
                self._expired += batch.order_ids
                workflow.set_current_details(_in_words(self._expired, "still looking for more"))
            if batch.paused:
                return self._report(SCHEDULE_PAUSED)
            if len(batch.order_ids) < room:
                return self._report(NOTHING_MORE_DUE)

    def _report(self, stopped_because: str) -> OrderExpiryReport:
        summary = _in_words(self._expired, f"stopped: {stopped_because}")
        workflow.set_current_details(summary)
        return OrderExpiryReport(self._expired, stopped_because, summary)

    def _continue_as_new(self, run: OrderExpiryRun) -> None:
        if not self._expired:
            raise ApplicationError(
                "the search-attribute limits leave no room to name a single order id", non_retryable=True
            )
        workflow.set_current_details(_in_words(self._expired, ATTRIBUTE_FULL))
        workflow.continue_as_new(
            replace(run, expired_earlier=run.expired_earlier + len(self._expired)),
            # The next run names its own orders: it must not inherit this run's OrderIds.
            search_attributes=TypedSearchAttributes(
                [pair for pair in workflow.info().typed_search_attributes if pair.key.name != ORDER_IDS.name]
            ),
        )


def _room_for_order_ids(budget: SearchAttributeBudget, batch_size: int) -> int:
    """How many more order ids (of the widest kind) the run's search attributes can still take, up to a batch."""
    low, high = 0, batch_size
    while low < high:
        middle = (low + high + 1) // 2
        if budget.fits({ORDER_IDS: [str(WIDEST_ORDER_ID + number) for number in range(middle)]}):
            low = middle
        else:
            high = middle - 1
    return low


def _in_words(expired: list[int], state: str) -> str:
    """What the run did, for the Web UI: how many orders, which (the first few), and where it stands."""
    if not expired:
        return f"No unpaid order was past its payment deadline; {state}."
    named = ", ".join(str(order_id) for order_id in expired[:ORDER_IDS_SHOWN])
    more = len(expired) - ORDER_IDS_SHOWN
    named += f" and {more} more (all in the OrderIds search attribute)" if more > 0 else ""
    return (
        f"Expired {len(expired)} unpaid orders past their payment deadline (stock and coupon uses given back): "
        f"{named}; {state}."
    )
