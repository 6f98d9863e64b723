"""Outbox retention: started by a schedule (hourly), a run deletes what is no longer kept, in bounded batches.

First the SENT events delivered more than OUTBOX_RETENTION_DAYS ago, with their attempts; then the
idempotency keys past their TTL and the payment-webhook answers older than providers retry. The run's
current details and result say what it removed; a long clean-up continues as new every few dozen
activities, carrying its totals, to keep histories short.
"""

from dataclasses import dataclass, field, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.outbox_retention import DeleteSentEvents, OutboxRetentionActivities, PurgeReplayRecords

ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# Activities heartbeat after every batch (a transaction of at most a few thousand rows).
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
ACTIVITY_TIMEOUT = timedelta(minutes=2)
# Each activity works this long before reporting back.
WORK_SECONDS = 10.0
# A run hands over to a fresh run (continue-as-new) after this many activities.
ACTIVITIES_PER_RUN = 50
SECONDS_PER_DAY = 86400
# Payment providers retry a webhook for days (Standard Webhooks senders: up to a few days); its answer
# is kept well beyond that, so a late retry is still answered as the first time.
WEBHOOK_ANSWERS_KEPT_DAYS = 30

NOTHING_MORE = "nothing more is past retention"
SCHEDULE_PAUSED = "the schedule is paused"


@dataclass
class RetentionTotals:
    """What a chain of runs removed so far."""

    events_deleted: int = 0
    attempts_deleted: int = 0
    deliveries_deleted: int = 0
    event_batches: int = 0
    largest_batch_rows: int = 0
    longest_batch_seconds: float = 0.0
    idempotency_keys_purged: int = 0
    webhook_answers_purged: int = 0


@dataclass
class OutboxRetentionRun:
    """One scheduled run: what to keep, how big a batch may be; and, when continued, where the chain stands."""

    schedule_id: str | None
    retention_days: float
    events_per_batch: int = 1000
    rows_per_batch: int = 5000
    replay_records_per_batch: int = 1000
    events_done: bool = False
    totals: RetentionTotals = field(default_factory=RetentionTotals)


@dataclass
class RetentionReport:
    """What the run (with the runs it continued) removed, why it stopped, and both in words."""

    totals: RetentionTotals
    stopped_because: str
    summary: str


@workflow.defn
class OutboxRetention:
    """Deletes SENT events past retention, then expired replay records, until none is left or the schedule pauses."""

    @workflow.run
    async def run(self, run: OutboxRetentionRun) -> RetentionReport:
        totals = replace(run.totals)
        activities = 0
        while not run.events_done:
            if activities == ACTIVITIES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                self._continue_as_new(run, totals)
            deleted = await workflow.execute_activity_method(
                OutboxRetentionActivities.delete_sent_events_past_retention,
                DeleteSentEvents(
                    run.retention_days * SECONDS_PER_DAY,
                    run.events_per_batch,
                    run.rows_per_batch,
                    schedule_id=run.schedule_id,
                    work_seconds=WORK_SECONDS,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=f"delete SENT events delivered more than {run.retention_days:g} days ago",
            )
            activities += 1
            totals.events_deleted += deleted.events
            totals.attempts_deleted += deleted.attempts
            totals.deliveries_deleted += deleted.deliveries
            totals.event_batches += deleted.batches
            totals.largest_batch_rows = max(totals.largest_batch_rows, deleted.largest_batch_rows)
            totals.longest_batch_seconds = max(totals.longest_batch_seconds, deleted.longest_batch_seconds)
            workflow.set_current_details(_in_words(run, totals, "deleting events"))
            if deleted.paused:
                return _report(run, totals, SCHEDULE_PAUSED)
            run = replace(run, events_done=deleted.done)
        while True:
            if activities == ACTIVITIES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                self._continue_as_new(run, totals)
            purged = await workflow.execute_activity_method(
                OutboxRetentionActivities.purge_expired_replay_records,
                PurgeReplayRecords(
                    run.replay_records_per_batch,
                    WEBHOOK_ANSWERS_KEPT_DAYS * SECONDS_PER_DAY,
                    schedule_id=run.schedule_id,
                    work_seconds=WORK_SECONDS,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary="purge idempotency keys past IDEMPOTENCY_KEY_TTL_HOURS and old payment-webhook answers",
            )
            activities += 1
            totals.idempotency_keys_purged += purged.keys
            totals.webhook_answers_purged += purged.webhook_answers
            if purged.paused:
                return _report(run, totals, SCHEDULE_PAUSED)
            if purged.done:
                return _report(run, totals, NOTHING_MORE)

    def _continue_as_new(self, run: OutboxRetentionRun, totals: RetentionTotals) -> None:
        workflow.set_current_details(_in_words(run, totals, "continuing as a new run to keep the history short"))
        workflow.continue_as_new(replace(run, totals=totals))


def _report(run: OutboxRetentionRun, totals: RetentionTotals, stopped_because: str) -> RetentionReport:
    summary = _in_words(run, totals, f"stopped: {stopped_because}")
    workflow.set_current_details(summary)
    return RetentionReport(totals, stopped_because, summary)


def _in_words(run: OutboxRetentionRun, totals: RetentionTotals, state: str) -> str:
    """What the run has removed so far, for the Web UI."""
    events = (
        f"Deleted {totals.events_deleted:,} SENT events delivered more than {run.retention_days:g} days ago, "
        f"with {totals.deliveries_deleted:,} deliveries and {totals.attempts_deleted:,} attempt rows, "
        f"in {totals.event_batches:,} batches "
        f"(largest {totals.largest_batch_rows:,} rows, longest {totals.longest_batch_seconds * 1000:.0f} ms)"
    )
    replays = (
        f"purged {totals.idempotency_keys_purged:,} expired idempotency keys and "
        f"{totals.webhook_answers_purged:,} payment-webhook answers older than {WEBHOOK_ANSWERS_KEPT_DAYS} days"
    )
    return f"{events}; {replays}; {state}."
