"""The relay workflow alone, the samples' way: a real dev server, a Worker on its own queue, a same-named fake activity.

The fake hands out made-up events as the real activity would report them, and records what each
activity call was asked, so the workflow's orchestration is seen directly: its lanes, when it
stops, what it names in its search attributes, and when it continues as new.
"""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus, WorkflowHistory
from temporalio.worker import Replayer, Worker

from activities.payloads import RelayBatch, RelayBatchReport, RelayReport, RelayRun
from workflows.relay import TICK_MARGIN, OrderEventsRelay, run_deadline
from workflows.search_attributes import DELIVERY_OUTCOMES, EVENT_IDS, ORDER_IDS, encoded_size


@dataclass
class FakeRelayActivities:
    """Delivers `backlog` (event id -> (order id, outcome)) as fast as asked; pauses the run when told to."""

    backlog: dict[str, tuple[str, str]] = field(default_factory=dict)
    paused: bool = False
    most_per_call: int | None = None
    reports_with_events: int = 0
    requests: list[RelayBatch] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0

    @activity.defn(name="relay_due_events")
    async def relay_due_events(self, batch: RelayBatch) -> RelayBatchReport:
        self.requests.append(batch)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.paused:
                return RelayBatchReport(paused=True)
            taken = list(self.backlog)[: min(batch.max_events, self.most_per_call or batch.max_events)]
            if not taken:
                await asyncio.sleep(min(batch.wait_seconds, 0.2))
                return RelayBatchReport()
            lines = []
            for event_id in taken:  # claimed before the delivery's wait, so that no other lane takes them
                order_id, outcome = self.backlog.pop(event_id)
                lines.append(f"{event_id} {order_id} {outcome}")
            await asyncio.sleep(0.05)  # a delivery takes a while, so that lanes overlap
            self.reports_with_events += 1
            report = RelayBatchReport("\n".join(lines), backlog=len(taken) >= batch.batch_size)
            report.slowest_batch_seconds = 0.05
            return report
        finally:
            self.running -= 1


def made_up_events(count: int, outcome: str = "SENT 201", orders: int | None = None) -> dict[str, tuple[str, str]]:
    return {str(uuid.uuid4()): (str(number % (orders or count) + 1), outcome) for number in range(count)}


def relay_run(**changes) -> RelayRun:
    arguments = {
        "interval_seconds": 1,
        "batch_size": 10,
        "lanes": 3,
        "run_seconds": 3,
        "search_attribute_value_limit_bytes": 64 * 1024,
        "search_attributes_total_limit_bytes": 256 * 1024,
    }
    return RelayRun(**{**arguments, **changes})


@dataclass
class FinishedRelay:
    """A relay chain that ran to its end: its workflow id, every run (oldest first) and the last run's report."""

    workflow_id: str
    runs: list[WorkflowExecution]
    report: RelayReport


@pytest.fixture
def run_relay(temporal, background):
    """Run OrderEventsRelay against `fake` on a fresh task queue until its chain of runs completes."""

    def run(fake: FakeRelayActivities, argument: RelayRun) -> FinishedRelay:
        queue = f"relay-workflow-test-{uuid.uuid4().hex[:8]}"
        client = temporal.client

        async def go() -> FinishedRelay:
            async with Worker(
                client, task_queue=queue, workflows=[OrderEventsRelay], activities=[fake.relay_due_events]
            ):
                handle = await client.start_workflow(OrderEventsRelay.run, argument, id=queue, task_queue=queue)
                report = await handle.result()  # follows the chain of continued runs to its end
            runs = [execution async for execution in client.list_workflows(f"WorkflowId = '{queue}'")]
            return FinishedRelay(queue, sorted(runs, key=lambda execution: execution.start_time), report)

        return background.run(go())

    return run


def test_a_backlog_opens_every_lane_and_a_trickle_keeps_one(run_relay):
    busy = FakeRelayActivities(backlog=made_up_events(200))
    run_relay(busy, relay_run())
    assert busy.most_at_once == 3

    quiet = FakeRelayActivities(backlog=made_up_events(3))
    run_relay(quiet, relay_run(run_seconds=2))
    assert quiet.most_at_once == 1


def test_a_run_ends_before_the_schedule_tick_it_aims_at(run_relay):
    fake = FakeRelayActivities()
    [run] = run_relay(fake, relay_run(run_seconds=2)).runs

    deadline = run_deadline(run.start_time, timedelta(seconds=1), timedelta(seconds=2))
    assert run.close_time <= deadline + TICK_MARGIN
    # Every activity was told to stop looking before the deadline, leaving room for its last batch.
    assert all(request.wait_seconds <= 2 for request in fake.requests)


def test_every_attempted_event_is_named_with_its_order_and_outcome(background, run_relay):
    events = {
        **made_up_events(5, "SENT 201", orders=2),
        **made_up_events(2, "RETRY 503 OrderCreated #1 of order 6: HTTP 503: busy"),
        **made_up_events(1, "FAILED 422 OrderCreated #1 of order 8: HTTP 422: no"),
    }
    fake = FakeRelayActivities(backlog=dict(events))
    relay = run_relay(fake, relay_run(run_seconds=2))
    [run], report = relay.runs, relay.report

    attributes = run.typed_search_attributes
    assert set(attributes.get(EVENT_IDS)) == set(events)
    assert set(attributes.get(ORDER_IDS)) == {order_id for order_id, _ in events.values()}
    assert set(attributes.get(DELIVERY_OUTCOMES)) == {"SENT", "RETRY", "FAILED"}
    assert (report.sent, report.retried, report.failed) == (5, 2, 1)
    [failed] = report.failed_events.values()
    assert failed == "OrderCreated #1 of order 8: HTTP 422: no"
    memo = background.run(run.memo())
    assert memo["summary"] == "sent 5, retried 2, failed 1 events"
    assert memo["failed_events"] == [f"{failed} ({next(iter(report.failed_events))})"]


def test_a_run_continues_as_new_before_its_names_would_exceed_the_limits_and_drops_none(run_relay):
    events = made_up_events(90)
    fake = FakeRelayActivities(backlog=dict(events))
    value_limit = 1024  # room for 26 event ids per run
    runs = run_relay(fake, relay_run(run_seconds=10, search_attribute_value_limit_bytes=value_limit)).runs

    named = [set(run.typed_search_attributes.get(EVENT_IDS) or []) for run in runs]
    assert len(runs) >= 4
    assert set().union(*named) == set(events)
    assert sum(len(names) for names in named) == len(events)  # each event named by the one run that attempted it
    assert all(encoded_size(names) <= value_limit for names in named)
    assert all(run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for run in runs[:-1])
    assert all(request.max_events <= 26 for request in fake.requests)


def test_a_paused_schedule_ends_the_run_at_once(run_relay):
    fake = FakeRelayActivities(paused=True)
    report = run_relay(fake, relay_run(run_seconds=60)).report

    assert report.ended == "stopped: the schedule is paused"
    assert len(fake.requests) == 1


def test_a_backlogs_names_are_upserted_together_and_every_event_is_named(temporal, background, run_relay):
    events = made_up_events(300)
    fake = FakeRelayActivities(backlog=dict(events), most_per_call=10)
    relay = run_relay(fake, relay_run(run_seconds=3))
    [run] = relay.runs

    history = background.run(temporal.client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history())
    upserts = sum(event.HasField("upsert_workflow_search_attributes_event_attributes") for event in history.events)
    assert fake.reports_with_events >= 30
    assert 1 <= upserts <= 3  # the first names at once, the rest when the wait is over or the run ends
    assert set(run.typed_search_attributes.get(EVENT_IDS)) == set(events)


def test_names_reach_the_search_attributes_while_the_run_goes_on(temporal, background):
    """Names that arrive soon after an upsert are upserted when the wait is over, not when the run ends."""
    fake = FakeRelayActivities(backlog=made_up_events(3))
    queue = f"relay-workflow-test-{uuid.uuid4().hex[:8]}"
    client = temporal.client

    async def go() -> tuple[set[str], WorkflowExecutionStatus]:
        async with Worker(client, task_queue=queue, workflows=[OrderEventsRelay], activities=[fake.relay_due_events]):
            handle = await client.start_workflow(
                OrderEventsRelay.run, relay_run(batch_size=1, lanes=1, run_seconds=20), id=queue, task_queue=queue
            )
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                described = await handle.describe()
                named = set(described.typed_search_attributes.get(EVENT_IDS) or [])
                if len(named) == 3 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            status = described.status
            await handle.terminate("the test has seen what it came for")
            return named, status

    named, status = background.run(go())
    assert len(named) == 3
    assert status == WorkflowExecutionStatus.RUNNING


RECORDED_BEFORE_NAMES_WERE_GROUPED = Path(__file__).parent / "histories" / "relay-run-before-names-were-grouped.json"


def test_a_run_recorded_before_names_were_grouped_replays_as_it_ran(background):
    """A run in flight when the worker is upgraded replays on the new code: one upsert per report, as recorded."""
    history = WorkflowHistory.from_json("relay-before-names-grouped", RECORDED_BEFORE_NAMES_WERE_GROUPED.read_text())
    assert sum(event.HasField("upsert_workflow_search_attributes_event_attributes") for event in history.events) >= 2

    result = background.run(
        Replayer(workflows=[OrderEventsRelay]).replay_workflow(history, raise_on_replay_failure=False)
    )
    assert result.replay_failure is None
