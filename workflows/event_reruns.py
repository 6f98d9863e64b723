"""Re-runs of deliveries started from the `temporal` CLI or Web UI: ReplayOrderEvents and RedriveEvents.

`temporal workflow start --task-queue order-events --type ReplayOrderEvents --input '{"order_id": "42"}'`
queues the selected SENT events for delivery again with their original ids (the relay then delivers
them, in order per order); `--type RedriveEvents` puts the selected FAILED events back to PENDING. Each
event acted on gets the same audit row as `sneaker-orders events replay|redrive`, by
`temporal:<workflow id>`. The runs only orchestrate: activities do the work, a bounded batch (one
transaction) each, and a long re-run continues as new to keep its history short.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.event_reruns import EventRerunActivities, RerunBatch, RerunBatchDone
    from workflows.rerun_requests import InvalidRerunRequest, RerunSelection, parse_rerun_request

# A destination that is not configured (raised by the first batch, before any event is touched) is not retried.
ACTIVITY_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_attempts=5, non_retryable_error_types=["DestinationNotFound"]
)
ACTIVITY_TIMEOUT = timedelta(minutes=1)
# Events per activity, each batch one short transaction.
BATCH_SIZE = 500
# A run hands over to a fresh one (continue-as-new) after this many batches.
BATCHES_PER_RUN = 100
# The report names at most this many of the events acted on (the audit rows name them all).
EVENT_IDS_REPORTED = 100


@dataclass
class RerunProgress:
    """Where a chain of runs stands: the outbox id to go on after, and what it did so far."""

    after_id: int = 0
    events: int = 0
    batches: int = 0
    event_ids: list[str] = field(default_factory=list)


@dataclass
class RerunReport:
    """What a re-run did: the events acted on (how many, the first of them), who is recorded, in words."""

    action: str
    selection: str
    events: int
    event_ids: list[str]
    requested_by: str
    summary: str


@workflow.defn
class ReplayOrderEvents:
    """Delivers the selected SENT events again, with their original ids, in order per order."""

    @workflow.run
    async def run(self, request: dict[str, Any], progress: RerunProgress | None = None) -> RerunReport:
        return await _rerun(_REPLAY, request, progress)


@workflow.defn
class RedriveEvents:
    """Puts the selected FAILED events back to PENDING, due now, with a fresh budget of attempts."""

    @workflow.run
    async def run(self, request: dict[str, Any], progress: RerunProgress | None = None) -> RerunReport:
        return await _rerun(_REDRIVE, request, progress)


@dataclass(frozen=True)
class _Action:
    name: str
    status: str
    activity: Any
    all_failed_allowed: bool


_REPLAY = _Action("REPLAY", "SENT", EventRerunActivities.replay_sent_events, False)
_REDRIVE = _Action("REDRIVE", "FAILED", EventRerunActivities.redrive_failed_events, True)


async def _rerun(action: _Action, request: dict[str, Any], progress: RerunProgress | None) -> RerunReport:
    try:
        selection = parse_rerun_request(request, workflow.now(), all_failed_allowed=action.all_failed_allowed)
    except InvalidRerunRequest as refused:
        raise ApplicationError(str(refused), type="InvalidRerunRequest", non_retryable=True) from None
    progress = progress or RerunProgress()
    requested_by = f"temporal:{workflow.info().workflow_id}"
    batches = 0
    while True:
        if batches == BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
            workflow.set_current_details(_in_words(action, selection, progress, "continuing as a new run"))
            workflow.continue_as_new(args=[selection.as_input(), progress])
        try:
            done: RerunBatchDone = await workflow.execute_activity_method(
                action.activity,
                _batch(selection, requested_by, progress.after_id),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=f"{action.name} a batch of {selection.describe()}",
            )
        except ActivityError as failed:
            refused = failed.cause
            if isinstance(refused, ApplicationError) and refused.type == "DestinationNotFound":
                # The run's own failure says why, in the operator's words.
                raise ApplicationError(refused.message, type="DestinationNotFound", non_retryable=True) from None
            raise
        batches += 1
        progress.batches += 1
        progress.events += len(done.event_ids)
        progress.event_ids += done.event_ids[: EVENT_IDS_REPORTED - len(progress.event_ids)]
        progress.after_id = done.last_id
        workflow.set_current_details(_in_words(action, selection, progress, "working"))
        if not done.more:
            summary = _in_words(action, selection, progress, "done")
            workflow.set_current_details(summary)
            return RerunReport(
                action.name, selection.describe(), progress.events, progress.event_ids, requested_by, summary
            )


def _batch(selection: RerunSelection, requested_by: str, after_id: int) -> RerunBatch:
    return RerunBatch(
        requested_by=requested_by,
        after_id=after_id,
        limit=BATCH_SIZE,
        order_id=selection.order_id,
        event_id=selection.event_id,
        since=selection.since.isoformat() if selection.since else None,
        until=selection.until.isoformat() if selection.until else None,
        destination=selection.destination,
    )


def _in_words(action: _Action, selection: RerunSelection, progress: RerunProgress, state: str) -> str:
    return (
        f"{action.name} of {selection.describe()}: {progress.events:,} {action.status} events queued for delivery "
        f"again in {progress.batches:,} batches, each audited; {state}."
    )
