"""The expiry workflow against a fake activity on the real dev server: it names every order within the limits."""

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.order_expiry import ExpiredOrders, ExpireDueOrders
from workflows.order_expiry import NOTHING_MORE_DUE, SCHEDULE_PAUSED, OrderExpiry, OrderExpiryRun
from workflows.schedules import ScheduledWorkflow, ensure_schedule
from workflows.search_attributes import ORDER_IDS, encoded_size

# With 512 bytes per value, a run has room for 23 order ids of the widest kind (19 digits) at first.
SMALL_VALUE_LIMIT = 512


class DueOrders:
    """Stands in for the database: `count` overdue orders, handed out as the workflow asks for them."""

    def __init__(self, count: int, *, paused: bool = False) -> None:
        self.due = list(range(1, count + 1))
        self.paused = paused
        self.limits: list[int] = []

    @activity.defn(name="expire_due_orders")
    async def expire_due_orders(self, request: ExpireDueOrders) -> ExpiredOrders:
        self.limits.append(request.limit)
        if self.paused:
            return ExpiredOrders([], paused=True)
        taken, self.due = self.due[: request.limit], self.due[request.limit :]
        return ExpiredOrders(taken)


async def run_scheduled_chain(client: Client, due: DueOrders, run: OrderExpiryRun) -> tuple[str, dict, list]:
    """Run the workflow from a schedule on a worker of its own; (workflow id, final result, every run's listing)."""
    queue = f"expiry-test-{uuid.uuid4().hex[:8]}"
    scheduled = ScheduledWorkflow(
        schedule_id=run.schedule_id,
        workflow=OrderExpiry.run,
        argument=run,
        every=timedelta(hours=1),
        task_queue=queue,
        run_timeout=timedelta(minutes=2),
    )
    async with Worker(client, task_queue=queue, workflows=[OrderExpiry], activities=[due.expire_due_orders]):
        await ensure_schedule(client, scheduled)
        schedule = client.get_schedule_handle(run.schedule_id)
        try:
            await schedule.trigger()
            while not (actions := (await schedule.describe()).info.recent_actions):
                await asyncio.sleep(0.1)
            workflow_id = actions[0].action.workflow_id
            result = await client.get_workflow_handle(workflow_id).result()
        finally:
            await schedule.delete()
    runs = [listed async for listed in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    return workflow_id, result, runs


def test_a_run_continues_as_new_when_its_order_ids_would_not_fit_and_each_run_names_its_own(temporal, background):
    due = DueOrders(100)
    run = OrderExpiryRun(
        schedule_id=f"expiry-{uuid.uuid4().hex[:8]}",
        search_attribute_value_limit_bytes=SMALL_VALUE_LIMIT,
        search_attributes_total_limit_bytes=40 * 1024,
    )

    workflow_id, result, runs = background.run(run_scheduled_chain(temporal.client, due, run))

    assert due.due == []
    assert max(due.limits) == 23, "a run asks only for what its search attribute can still name"
    assert len(runs) > 1, "the runs continued as new"
    names = [listed.typed_search_attributes.get(ORDER_IDS, []) for listed in runs]
    assert all(encoded_size(run_names) <= SMALL_VALUE_LIMIT for run_names in names)
    named = [order_id for run_names in names for order_id in run_names]
    assert sorted(named, key=int) == [str(order_id) for order_id in range(1, 101)], "every order named exactly once"
    assert result["stopped_because"] == NOTHING_MORE_DUE
    assert all(listed.search_attributes.get("TemporalScheduledById") == [run.schedule_id] for listed in runs)

    async def runs_naming(order_id: int) -> list:
        query = f"WorkflowId = '{workflow_id}' AND OrderIds = '{order_id}'"
        return [listed async for listed in temporal.client.list_workflows(query)]

    assert len(background.run(runs_naming(24))) == 1  # the second run's first order, and only that run


def test_a_run_whose_schedule_is_paused_expires_nothing_and_says_so(temporal, background):
    due = DueOrders(5, paused=True)
    run = OrderExpiryRun(schedule_id=f"expiry-{uuid.uuid4().hex[:8]}")

    _, result, runs = background.run(run_scheduled_chain(temporal.client, due, run))

    assert due.due == [1, 2, 3, 4, 5]
    assert (result["stopped_because"], result["expired_order_ids"]) == (SCHEDULE_PAUSED, [])
    assert "No unpaid order" in result["summary"] and SCHEDULE_PAUSED in result["summary"]
    assert len(runs) == 1
