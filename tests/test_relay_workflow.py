"""The relay workflow alone, the samples' way: a real dev server, a Worker on its own queue, a same-named fake activity.

The fake hands out made-up attempts as the real activity would report them (counts, and the events
that had a problem), and records what each activity call was asked, so the workflow's orchestration
is seen directly: its lanes, when it stops, what it names in its search attributes within Temporal's
default limits, what it says it left out, and that it never continues as new for names.
"""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.payloads import EventProblem, RelayBatch, RelayBatchReport, RelayReport, RelayRun
from workflows.relay import TICK_MARGIN, OrderEventsRelay, run_deadline
from workflows.search_attributes import DEFAULT_VALUE_LIMIT_BYTES, DELIVERY_OUTCOMES, EVENT_IDS, ORDER_IDS, encoded_size


@dataclass
class FakeRelayActivities:
    """Delivers `backlog` (event id -> (order id, outcome)) `per_call` at a time; pauses the run when told to."""

    backlog: dict[str, tuple[str, str]] = field(default_factory=dict)
    paused: bool = False
    per_call: int = 10
    breaker_open_seconds: float = 0.0
    reports_with_events: int = 0
    requests: list[RelayBatch] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    delivers_to: tuple[str, ...] = ("platform",)

    @activity.defn(name="relay_due_events")
    async def relay_due_events(self, batch: RelayBatch) -> RelayBatchReport:
        self.requests.append(batch)
        if batch.destination not in self.delivers_to:
            return RelayBatchReport(destination=batch.destination, delivered_here=False)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.paused:
                return RelayBatchReport(paused=True)
            taken = list(self.backlog)[: self.per_call]
            if not taken:
                await asyncio.sleep(min(batch.wait_seconds, 0.2))
                return RelayBatchReport(backlog_events=0, oldest_waiting_seconds=0.0)
            report = RelayBatchReport(
                backlog=len(taken) >= batch.batch_size,
                breaker_open_seconds=0.0,
                destination=batch.destination,
                worker_destinations=list(self.delivers_to),
            )
            for event_id in taken:  # claimed before the delivery's wait, so that no other lane takes them
                order_id, outcome = self.backlog.pop(event_id)
                report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                if outcome != "SENT":
                    what = f"OrderCreated #1 of order {order_id}: {outcome.lower()}"
                    report.problems.append(EventProblem(event_id, order_id, outcome, 503, what))
            report.breaker_open_seconds = self.breaker_open_seconds
            report.backlog_events, report.oldest_waiting_seconds = len(self.backlog), 1.5
            await asyncio.sleep(0.05)  # a delivery takes a while, so that lanes overlap
            self.reports_with_events += 1
            return report
        finally:
            self.running -= 1


def made_up_events(count: int, outcome: str = "SENT", orders: int | None = None) -> dict[str, tuple[str, str]]:
    return {str(uuid.uuid4()): (str(number % (orders or count) + 1), outcome) for number in range(count)}


def relay_run(**changes) -> RelayRun:
    arguments = {"interval_seconds": 1, "batch_size": 10, "lanes": 3, "run_seconds": 3, "schedule_id": None}
    return RelayRun(**{**arguments, **changes})


@dataclass
class FinishedRelay:
    """A relay chain that ran to its end: its workflow id, every run (oldest first) and the last run's report."""

    workflow_id: str
    runs: list[WorkflowExecution]
    report: RelayReport
    details: str  # the last run's current details, what the Web UI shows


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
                # Current details, through Temporal's built-in metadata query (answered by a worker).
                details = (
                    await client.get_workflow_handle(queue).query("__temporal_workflow_metadata")
                ).current_details
            runs = [execution async for execution in client.list_workflows(f"WorkflowId = '{queue}'")]
            return FinishedRelay(queue, sorted(runs, key=lambda execution: execution.start_time), report, details)

        return background.run(go())

    return run


def test_a_backlog_opens_every_lane_and_a_trickle_keeps_two(run_relay):
    busy = FakeRelayActivities(backlog=made_up_events(200))
    run_relay(busy, relay_run())
    assert busy.most_at_once == 3
    assert {request.lane for request in busy.requests} == {1, 2, 3}

    quiet = FakeRelayActivities(backlog=made_up_events(3), per_call=1)
    run_relay(quiet, relay_run(run_seconds=2, batch_size=10))
    assert quiet.most_at_once == 2
    assert {request.lane for request in quiet.requests} == {1, 2}


def test_a_destination_added_while_a_run_relays_gets_its_lanes_in_that_run(run_relay):
    fake = FakeRelayActivities(backlog=made_up_events(40), per_call=5, delivers_to=("platform", "warehouse"))
    relay = run_relay(fake, relay_run(run_seconds=2, destinations=["platform"]))

    assert {request.lane for request in fake.requests if request.destination == "warehouse"} == {1, 2}
    assert "**warehouse**" in relay.details


def test_each_destination_has_lanes_of_its_own_and_one_taken_out_ends_only_its_lanes(run_relay):
    fake = FakeRelayActivities(backlog=made_up_events(40), per_call=5, delivers_to=("platform", "warehouse"))
    relay = run_relay(fake, relay_run(run_seconds=2, destinations=["platform", "warehouse", "gone"]))

    by_destination = {request.destination for request in fake.requests}
    assert by_destination == {"platform", "warehouse", "gone"}
    assert sorted(request.lane for request in fake.requests if request.destination == "gone") == [1, 2]  # once each
    assert relay.report.sent == 40  # the run went on, and completed
    assert set(relay.report.destinations) == {"platform", "warehouse", "gone"}
    assert "**gone**" in relay.details and "not configured on the workers any more" in relay.details


@pytest.mark.heavy  # a bar on speed under load: at most two such tests at once (tests/support/scheduling.py)
@pytest.mark.flaky(reruns=2)  # a latency bar two xdist workers on two cores can miss: re-run, never loosened
def test_a_run_ends_before_the_schedule_tick_it_aims_at(run_relay):
    fake = FakeRelayActivities()
    [run] = run_relay(fake, relay_run(run_seconds=2)).runs

    deadline = run_deadline(run.start_time, timedelta(seconds=1), timedelta(seconds=2))
    assert run.close_time <= deadline + TICK_MARGIN
    assert all(request.wait_seconds <= 2 for request in fake.requests)


def test_a_run_names_the_events_it_retried_held_or_failed_not_those_it_sent(background, run_relay):
    sent = made_up_events(5, "SENT", orders=2)
    problems = {
        **made_up_events(2, "RETRY"),
        **made_up_events(1, "HELD"),
        **made_up_events(1, "FAILED"),
        **made_up_events(1, "LEASE_EXPIRED"),
    }
    fake = FakeRelayActivities(backlog={**sent, **problems}, per_call=20)
    relay = run_relay(fake, relay_run(run_seconds=2))
    [run], report = relay.runs, relay.report

    attributes = run.typed_search_attributes
    assert set(attributes.get(EVENT_IDS)) == set(problems)
    assert set(attributes.get(ORDER_IDS)) == {order_id for order_id, _ in problems.values()}
    outcomes = {"SENT", "RETRY", "HELD", "FAILED"}
    assert set(attributes.get(DELIVERY_OUTCOMES)) == outcomes | {f"platform:{outcome}" for outcome in outcomes}
    assert report.outcomes == {"SENT": 5, "RETRY": 2, "HELD": 1, "FAILED": 1, "LEASE_EXPIRED": 1}
    assert report.names_left_out_count == 0
    [failed] = report.failed_events.values()
    memo = background.run(run.memo())
    assert memo["summary"] == "sent 5, retried 2, held 1, failed 1, lease expired 1 events"
    assert memo["failed_events"] == [f"{failed} ({next(iter(report.failed_events))})"]


def test_a_run_that_cannot_name_every_problem_says_so_and_never_continues_as_new_for_names(
    temporal, background, run_relay
):
    problems = made_up_events(300, "RETRY")
    fake = FakeRelayActivities(backlog={**made_up_events(3000), **problems}, per_call=100)
    relay = run_relay(fake, relay_run(run_seconds=3))
    [run] = relay.runs  # one run: names never end it
    report = relay.report

    named = set(run.typed_search_attributes.get(EVENT_IDS))
    assert encoded_size(named) <= DEFAULT_VALUE_LIMIT_BYTES
    assert len(named) >= 40 and named <= set(problems)
    assert report.names_left_out_count == len(problems) - len(named)
    listed = {line.split()[0] for line in report.names_left_out}
    assert listed == set(problems) - named
    assert set(run.typed_search_attributes.get(ORDER_IDS)) >= {problems[event_id][0] for event_id in named}
    assert f"{report.names_left_out_count} are left out" in relay.details
    assert "sneaker-orders events show" in relay.details
    assert run.status == WorkflowExecutionStatus.COMPLETED


def test_a_paused_schedule_ends_the_run_at_once(run_relay):
    fake = FakeRelayActivities(paused=True)
    report = run_relay(fake, relay_run(run_seconds=60)).report

    assert report.ended == "stopped: the schedule is paused"
    assert len(fake.requests) == 2  # one activity in each of the two quiet lanes, and no other


@pytest.mark.heavy  # a bar on speed under load: at most two such tests at once (tests/support/scheduling.py)
@pytest.mark.flaky(reruns=2)  # a latency bar two xdist workers on two cores can miss: re-run, never loosened
def test_a_drain_costs_few_upserts_and_the_run_keeps_the_platform_and_outbox_story(temporal, background, run_relay):
    fake = FakeRelayActivities(backlog=made_up_events(300, "RETRY"), per_call=10, breaker_open_seconds=0.5)
    relay = run_relay(fake, relay_run(run_seconds=3, lanes=1))
    [run] = relay.runs

    history = background.run(temporal.client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history())
    upserts = sum(event.HasField("upsert_workflow_search_attributes_event_attributes") for event in history.events)
    assert fake.reports_with_events >= 20
    assert 1 <= upserts <= 3  # the first names at once, then at most every NAMES_LEAST_SECONDS, and at the end
    assert relay.report.breaker_open_seconds == pytest.approx(0.5 * fake.reports_with_events)
    assert relay.report.backlog_events == 0, relay.details  # the last activity found the outbox empty
    assert "retried 300" in relay.details and "Breaker open for" in relay.details
    assert "events waiting" in relay.details


def test_names_reach_the_search_attributes_while_the_run_goes_on(temporal, background):
    """A run's problems are searchable while it still runs, not only once it ends."""
    fake = FakeRelayActivities(backlog=made_up_events(3, "RETRY"), per_call=1)
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
