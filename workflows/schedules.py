"""The Temporal schedules the worker keeps in place, created or updated the same way, their pause state kept.

Every scheduled workflow of the system (the relay, order expiry, outbox retention) is described by
one `ScheduledWorkflow`; operators pause, resume and trigger each with the same `temporal schedule`
commands, and each run's activities stop changing anything once its schedule is paused.
"""

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledWorkflow:
    """One schedule: which workflow it starts, with what argument, how often, on which task queue."""

    schedule_id: str
    workflow: Callable[..., Any]
    argument: Any
    every: timedelta
    task_queue: str
    # A run that hangs must not hold its schedule (overlap SKIP) for ever.
    run_timeout: timedelta
    # After Temporal was down, one catch-up run is enough: each run does all that is due.
    catchup_window: timedelta = timedelta(minutes=1)
    # What each run is, in words: the Web UI shows it as the run's summary.
    summary: str | None = None

    def schedule(self) -> Schedule:
        """The Temporal schedule as configured (paused state aside)."""
        return Schedule(
            action=ScheduleActionStartWorkflow(
                self.workflow,
                self.argument,
                id=f"{self.schedule_id}-run",
                task_queue=self.task_queue,
                run_timeout=self.run_timeout,
                static_summary=self.summary,
                static_details=self.readable_argument(),
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=self.every)]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=self.catchup_window),
        )

    def readable_argument(self) -> str | None:
        """The argument as JSON text: `temporal schedule describe` shows the payload itself only as base64."""
        if not dataclasses.is_dataclass(self.argument):
            return None
        return f"argument: {json.dumps(dataclasses.asdict(self.argument), sort_keys=True)}"


async def ensure_schedule(client: Client, scheduled: ScheduledWorkflow) -> None:
    """Create the schedule, or bring an existing one up to date while keeping its paused state and note."""
    schedule = scheduled.schedule()
    try:
        await client.create_schedule(scheduled.schedule_id, schedule)
        log.info("created schedule %s (every %ss)", scheduled.schedule_id, scheduled.every.total_seconds())
        return
    except ScheduleAlreadyRunningError:
        pass

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

    await client.get_schedule_handle(scheduled.schedule_id).update(keep_state)
    log.info("updated schedule %s (every %ss)", scheduled.schedule_id, scheduled.every.total_seconds())


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the custom search attributes the workflows upsert, where the namespace lacks them."""
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
        for key in CUSTOM_SEARCH_ATTRIBUTES
        if key.name not in listed.custom_attributes
    }
    if not missing:
        return
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
    )
    log.info("registered search attributes %s in namespace %s", ", ".join(sorted(missing)), namespace)
