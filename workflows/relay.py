"""The outbox relay: started by a schedule, it has due events claimed and delivered, and names every one it attempts.

A run relays for about RELAY_RUN_SECONDS and ends just before a tick of its schedule (so the next
run starts on that tick rather than an interval later). It works in one lane and opens up to
`lanes` when a claim comes back full. Every event it attempts is named in its search attributes
(`OrderIds`, `EventIds`, `DeliveryOutcomes`); no activity may deliver more events than the run can
still name, and when no more names fit (or the history grows long) the run continues as new, with
the same deadline. Its page says in words what it sent, retried and failed, and names the failures.
"""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.payloads import RelayBatch, RelayBatchReport, RelayReport, RelayRun
    from activities.relay import RelayActivities
    from workflows.search_attributes import DELIVERY_OUTCOMES, EVENT_IDS, ORDER_IDS, SearchAttributeBudget

# Database hiccups are worth a few quick retries; after that the run fails and the schedule's next
# run starts afresh (anything still leased is given back when its lease expires).
ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
# The activity heartbeats at least every second: a worker that died mid-batch is noticed within this.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Beyond its window an activity needs time for its last batch: requests, recording, a pause's wait.
ACTIVITY_MARGIN = timedelta(seconds=90)
# An activity reports after delivering this long, so the run's page and search attributes stay current.
REPORT_AFTER_SECONDS = 1.0
# The bytes one more event may add to the search attributes: a quoted UUID and comma; a quoted order
# id (a bigint: at most 19 digits) and comma.
EVENT_ID_BYTES = 39
ORDER_ID_BYTES = 24
WORST_OUTCOMES = {DELIVERY_OUTCOMES: ["FAILED", "RETRY", "SENT"]}
# What each logged outcome counts as in DeliveryOutcomes: a HELD (not counted) or late attempt is a retry.
SEARCHABLE_OUTCOMES = {"SENT": "SENT", "FAILED": "FAILED"}
# Continue as new well before Temporal's own limits on history (50,000 events, 50 MB).
HISTORY_EVENTS_LIMIT = 10_000
# A run must be over before the schedule's next tick, or that tick is skipped (overlap SKIP) and
# relaying pauses for a whole interval. Each lane therefore starts an activity only while its last
# batch (as long as the slowest this run has seen) still ends this much before the tick.
TICK_MARGIN = timedelta(milliseconds=100)
FIRST_BATCH_ESTIMATE = 0.1
# A run started by hand (`temporal schedule trigger`) relays at least this long, even if a tick is near.
MIN_WINDOW = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAILED_SHOWN = 20
# Each upsert sends a run's whole lists (up to the value limit, 160 KiB on the dev server) and was
# most of the Temporal server's CPU per delivered event. So new names are upserted together: at once
# when the last upsert is this long ago, else when it will be; the wait grows with the names a run
# already holds (each upsert costs more), up to NAMES_MOST_SECONDS. A run upserts what is left
# before it ends or continues as new.
NAMES_LEAST_SECONDS = 2.0
NAMES_BYTES_PER_SECOND = 16 * 1024
NAMES_MOST_SECONDS = 10.0
NAMES_GROUPED = "names-upserted-together"


@workflow.defn
class OrderEventsRelay:
    """Relays until just before a schedule tick about `run_seconds` away, naming every event it attempts."""

    def __init__(self) -> None:
        self._report = RelayReport()
        self._sent: set[str] = set()
        self._retried: set[str] = set()
        self._lanes: list[asyncio.Task] = []
        self._reserved = 0
        self._slowest_batch = FIRST_BATCH_ESTIMATE
        self._breaker = ("CLOSED", "")
        self._paused = False
        self._out_of_names = False
        self._stop_by = EPOCH
        self._budget = SearchAttributeBudget(0, 0)
        self._memo: dict = {}
        self._backlog = False
        self._names_grouped = False
        self._names_upserted_at = EPOCH
        self._names_timer: asyncio.Task | None = None

    @workflow.run
    async def run(self, run: RelayRun) -> RelayReport:
        now = workflow.now()
        interval = timedelta(seconds=run.interval_seconds)
        self._stop_by = (
            datetime.fromisoformat(run.stop_by)
            if run.stop_by
            else run_deadline(now, interval, timedelta(seconds=run.run_seconds))
        )
        self._budget = SearchAttributeBudget(
            run.search_attribute_value_limit_bytes, run.search_attributes_total_limit_bytes
        )
        self._names_grouped = workflow.patched(NAMES_GROUPED)
        self._show(run)
        self._backlog = run.backlog
        self._open_lane(run)
        if run.backlog:  # the run before worked on a backlog until it continued as new: resume at full width
            while len(self._lanes) < run.lanes:
                self._open_lane(run)
        # Lanes may open while others run, so wait for all of them rather than gather the first few.
        await workflow.wait_condition(lambda: all(lane.done() for lane in self._lanes))
        await asyncio.gather(*self._lanes)  # a lane that failed fails the run
        self._upsert_names()
        reason = self._reason_to_continue()
        if reason and not self._paused and self._seconds_left() > 0:
            self._report.ended = f"continued as new: {reason}"
            self._show(run)
            workflow.continue_as_new(
                dataclasses.replace(
                    run, stop_by=self._stop_by.isoformat(), continued=run.continued + 1, backlog=self._backlog
                )
            )
        self._report.ended = "stopped: the schedule is paused" if self._paused else "done: the run's time is up"
        self._show(run)
        return self._report

    def _open_lane(self, run: RelayRun) -> None:
        lane = len(self._lanes) + 1
        self._lanes.append(asyncio.create_task(self._relay_in_lane(run, lane)))

    async def _relay_in_lane(self, run: RelayRun, lane: int) -> None:
        """One lane: have due events relayed, again and again, until time, names or the schedule say stop."""
        while (batch := await self._next_batch(run)) is not None:
            self._reserved += batch.max_events
            try:
                report = await workflow.execute_activity_method(
                    RelayActivities.relay_due_events,
                    batch,
                    start_to_close_timeout=timedelta(seconds=batch.wait_seconds) + ACTIVITY_MARGIN,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=ACTIVITY_RETRIES,
                    summary=_describe(batch, lane),
                )
            finally:
                self._reserved -= batch.max_events
            self._take(report, run)
            self._backlog = report.backlog
            if report.paused:
                self._paused = True
            elif report.backlog:  # a claim came back full: work on the backlog at full width
                while len(self._lanes) < run.lanes:
                    self._open_lane(run)

    async def _next_batch(self, run: RelayRun) -> RelayBatch | None:
        """The next activity's work; None when the run must stop (time, pause) or continue as new (names, history)."""
        while True:
            if self._paused or self._reason_to_continue():
                return None
            wait = self._seconds_left() - self._slowest_batch
            if wait <= 0:
                return None
            room = self._budget.room({EVENT_IDS: EVENT_ID_BYTES, ORDER_IDS: ORDER_ID_BYTES}, WORST_OUTCOMES)
            room -= self._reserved
            if room >= 1:
                # On a backlog the lanes share the room; otherwise one batch, so a backlog is seen at once.
                room = min(room, max(run.batch_size, room // run.lanes) if self._backlog else run.batch_size)
                return RelayBatch(
                    max_events=room,
                    batch_size=min(run.batch_size, room),
                    wait_seconds=wait,
                    report_after_seconds=REPORT_AFTER_SECONDS,
                    schedule_id=run.schedule_id,
                    breaker_shown=self._breaker[0],
                )
            if self._reserved == 0:
                self._out_of_names = True
                return None
            # Other lanes hold the room that is left: wait until one of them reports.
            await workflow.wait_condition(lambda held=self._reserved: self._reserved != held)

    def _take(self, report: RelayBatchReport, run: RelayRun) -> None:
        """Name the activity's events in the search attributes and tell the run's page what happened."""
        self._report.activities += 1
        self._slowest_batch = max(self._slowest_batch, report.slowest_batch_seconds)
        self._breaker = (report.breaker, report.breaker_detail)
        event_ids, order_ids, outcomes = [], [], set()
        for line in report.attempts.splitlines():
            event_id, order_id, outcome, status, *detail = line.split(" ", 4)
            event_ids.append(event_id)
            order_ids.append(order_id)
            outcomes.add(SEARCHABLE_OUTCOMES.get(outcome, "RETRY"))
            self._report.events[event_id] = " ".join([outcome, status, *detail])
            if outcome == "SENT":
                self._sent.add(event_id)
            elif outcome == "FAILED":
                self._report.failed_events[event_id] = detail[0] if detail else f"FAILED {status}"
            else:
                self._retried.add(event_id)
        if event_ids:
            self._budget.add({ORDER_IDS: order_ids, EVENT_IDS: event_ids, DELIVERY_OUTCOMES: outcomes})
            self._upsert_names_when_due()
        self._report.sent, self._report.retried = len(self._sent), len(self._retried)
        self._report.failed = len(self._report.failed_events)
        self._show(run)

    def _upsert_names_when_due(self) -> None:
        """Upsert the new names now if the last upsert is long enough ago, else have a timer do it then."""
        if not self._names_grouped:  # a run started before names were grouped replays as it ran
            self._upsert_names()
            return
        if self._names_timer is not None:
            return
        wait = min(max(NAMES_LEAST_SECONDS, self._budget.named_bytes() / NAMES_BYTES_PER_SECOND), NAMES_MOST_SECONDS)
        due = self._names_upserted_at + timedelta(seconds=wait)
        if workflow.now() >= due:
            self._upsert_names()
        else:
            self._names_timer = asyncio.create_task(self._upsert_names_at(due))

    async def _upsert_names_at(self, due: datetime) -> None:
        await workflow.sleep(due - workflow.now())
        self._names_timer = None
        self._upsert_names()

    def _upsert_names(self) -> None:
        if self._names_timer is not None:
            self._names_timer.cancel()
            self._names_timer = None
        if self._budget.unsent:
            self._budget.flush()
            self._names_upserted_at = workflow.now()

    def _reason_to_continue(self) -> str | None:
        if self._out_of_names:
            return f"no more event names fit its search attributes ({len(self._report.events)} events named)"
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() >= HISTORY_EVENTS_LIMIT:
            return f"its history is long ({info.get_current_history_length()} events)"
        return None

    def _seconds_left(self) -> float:
        return (self._stop_by - workflow.now()).total_seconds()

    def _show(self, run: RelayRun) -> None:
        """The run's page in words: current details (Markdown) and the memo, both what the Web UI shows."""
        report = self._report
        counts = f"sent {report.sent}, retried {report.retried}, failed {report.failed} events"
        failed = list(report.failed_events.items())
        heading = report.ended or f"relaying until {self._stop_by:%H:%M:%S} UTC in {len(self._lanes) or 1} lane(s)"
        lines = [f"**{heading}**", "", f"**{counts}** in {report.activities} activities"]
        if failed:
            lines += ["", "**Failed:**"] + [f"- {what} (`{event_id}`)" for event_id, what in failed[:FAILED_SHOWN]]
            if len(failed) > FAILED_SHOWN:
                lines.append(f"- and {len(failed) - FAILED_SHOWN} more: see the result, or EventIds")
        lines += ["", f"Platform: {self._breaker[1] or 'breaker ' + self._breaker[0]}"]
        if run.continued:
            lines.append(f"Continued run {run.continued + 1} of this relay window.")
        workflow.set_current_details("\n".join(lines))
        memo = {
            "summary": counts,
            "failed_events": [f"{what} ({event_id})" for event_id, what in failed[:FAILED_SHOWN]],
            "platform": self._breaker[0],
            "ended": report.ended or None,
        }
        if memo != self._memo:  # each upsert is a history event: only when something changed
            self._memo = memo
            workflow.upsert_memo(memo)


def run_deadline(now: datetime, interval: timedelta, run_length: timedelta) -> datetime:
    """When a run started `now` stops starting activities: just before the last schedule tick within `run_length`
    (at least the next tick; ticks fall on whole multiples of the interval since the epoch), and not before
    MIN_WINDOW has passed."""
    next_tick = EPOCH + ((now - EPOCH) // interval + 1) * interval
    last_tick_in_run = EPOCH + ((now + run_length - EPOCH) // interval) * interval
    return max(max(next_tick, last_tick_in_run) - TICK_MARGIN, now + MIN_WINDOW)


def _describe(batch: RelayBatch, lane: int) -> str:
    """The activity summary the Web UI shows."""
    held = " (platform failing: probe it)" if batch.breaker_shown == "OPEN" else ""
    return f"lane {lane}: claim and deliver up to {batch.max_events} due events{held}"
