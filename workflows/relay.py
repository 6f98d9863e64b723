"""The outbox relay: started by a schedule, it has due events delivered, and names the events that had a problem.

A run relays for about RELAY_RUN_SECONDS and ends just before a tick of its schedule (so the next
run starts on that tick rather than an interval later). It relays to each destination apart: per
destination it works in two lanes and opens up to `lanes` when a claim comes back full; each lane is
a row of activities, each keeping requests in flight for about REPORT_AFTER_SECONDS of delivery and
then reporting counts and problems (the two first lanes half a period apart, so that one always
claims while the other reports). A destination down or slow holds up only its own lanes.

Names serve search, and never decide the speed: the run names in `OrderIds` and `EventIds` every
event it retried, held or failed (and its order) while they fit Temporal's default limits (2 KiB
per value, 40 KiB per run), and `DeliveryOutcomes` the distinct outcomes, in all and per destination
(`SENT`, `warehouse:FAILED`). Events it sent are not named: `delivery_attempts` keeps every attempt with its run id
(`sneaker-orders events show`, `GET /events/{id}`). Problems beyond the limits are left out,
counted, listed in the run's result, and its current details say so and how to find them. It
continues as new only for its history.
"""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.payloads import (
        DestinationStory,
        EventProblem,
        RelayBatch,
        RelayBatchReport,
        RelayReport,
        RelayRun,
    )
    from activities.relay import RelayActivities
    from workflows.search_attributes import (
        DEFAULT_TOTAL_LIMIT_BYTES,
        DEFAULT_VALUE_LIMIT_BYTES,
        DELIVERY_OUTCOMES,
        EVENT_IDS,
        ORDER_IDS,
        SearchAttributeBudget,
    )

# Database hiccups are worth a few quick retries; after that the run fails and the schedule's next
# run starts afresh (anything still leased is given back when its lease expires).
ACTIVITY_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
# The activity heartbeats at least every second: a worker that died mid-flight is noticed within this.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Beyond its window an activity needs time to report: its last records, a pause's or a shutdown's wait.
ACTIVITY_MARGIN = timedelta(seconds=90)
# An activity reports after delivering this long: the run's page stays current, and each report
# costs Temporal about two actions (activity and workflow task), whatever the number of events.
REPORT_AFTER_SECONDS = 2.0
QUIET_LANES = 2
# What an activity needs past its window to report (requests in flight are handed over, not awaited),
# at least; the run measures what its activities took past their windows and keeps 1.5 times the
# longest (at most REPORT_MARGIN_MOST) free before the tick: a run that ends after its tick has the
# tick skipped (overlap SKIP), and nothing is relayed for a whole interval.
REPORT_ESTIMATE = timedelta(milliseconds=100)
REPORT_MARGIN_MOST = 2.0
# What each logged outcome counts as in DeliveryOutcomes: a stale or lease-expired attempt is a retry.
SEARCHABLE_OUTCOMES = {"SENT": "SENT", "RETRY": "RETRY", "HELD": "HELD", "FAILED": "FAILED"}
# Continue as new well before Temporal's own limits on history (50,000 events, 50 MB).
HISTORY_EVENTS_LIMIT = 10_000
# A run must be over before the schedule's next tick, or that tick is skipped (overlap SKIP) and
# relaying pauses for a whole interval.
TICK_MARGIN = timedelta(milliseconds=100)
# A run started by hand (`temporal schedule trigger`) relays at least this long, even if a tick is near.
MIN_WINDOW = timedelta(seconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAILED_SHOWN = 20
# Events left out of the names that the run's result still lists (the rest are counted).
LEFT_OUT_LISTED = 1000
# New names are upserted together (each upsert is an action and sends whole lists), at most this often.
NAMES_LEAST_SECONDS = 2.0
WORDS = {"RETRY": "retried", "HELD": "held", "FAILED": "failed", "STALE": "stale", "LEASE_EXPIRED": "lease expired"}


@workflow.defn
class OrderEventsRelay:
    """Relays until just before a schedule tick about `run_seconds` away, naming the events that had a problem."""

    def __init__(self) -> None:
        self._report = RelayReport()
        self._lanes: dict[str, list[asyncio.Task]] = {}  # per destination
        self._paused = False
        self._stop_by = EPOCH
        self._budget = SearchAttributeBudget(DEFAULT_VALUE_LIMIT_BYTES, DEFAULT_TOTAL_LIMIT_BYTES)
        self._memo: dict = {}
        self._backlog = False
        self._outbox_seen_at: datetime | None = None
        self._names_upserted_at = EPOCH
        self._overrun = 0.0  # the longest an activity took to report past its window, in seconds

    @workflow.run
    async def run(self, run: RelayRun) -> RelayReport:
        now = workflow.now()
        interval = timedelta(seconds=run.interval_seconds)
        self._stop_by = (
            datetime.fromisoformat(run.stop_by)
            if run.stop_by
            else run_deadline(now, interval, timedelta(seconds=run.run_seconds))
        )
        for destination in run.destinations:
            self._lanes[destination] = []
            self._report.destinations[destination] = DestinationStory()
        self._show(run)
        self._backlog = run.backlog
        for destination in run.destinations:
            # Two lanes even when quiet: their activities report half a period apart, so while one lane's
            # next activity is being started the other claims, and a live event never waits for that.
            while len(self._lanes[destination]) < min(QUIET_LANES, run.lanes):
                self._open_lane(run, destination)
            if run.backlog:  # the run before worked on a backlog until it continued as new: resume at full width
                while len(self._lanes[destination]) < run.lanes:
                    self._open_lane(run, destination)
        # Lanes may open while others run, so wait for all of them rather than gather the first few.
        await workflow.wait_condition(lambda: all(lane.done() for lane in self._all_lanes()))
        await asyncio.gather(*self._all_lanes())  # a lane that failed fails the run
        self._upsert_names()
        reason = self._reason_to_continue()
        if reason and not self._paused and self._seconds_left() > 0:
            self._report.ended = f"continued as new: {reason}"
            self._show(run)
            workflow.continue_as_new(
                dataclasses.replace(
                    run,
                    stop_by=self._stop_by.isoformat(),
                    continued=run.continued + 1,
                    backlog=self._backlog,
                    destinations=list(self._lanes),  # those added while it ran too
                )
            )
        self._report.ended = "stopped: the schedule is paused" if self._paused else "done: the run's time is up"
        self._show(run)
        return self._report

    def _all_lanes(self) -> list[asyncio.Task]:
        return [lane for lanes in self._lanes.values() for lane in lanes]

    def _open_lane(self, run: RelayRun, destination: str) -> None:
        lanes = self._lanes[destination]
        lanes.append(asyncio.create_task(self._relay_in_lane(run, destination, len(lanes) + 1)))

    async def _relay_in_lane(self, run: RelayRun, destination: str, lane: int) -> None:
        """One lane of one destination: have its due events relayed, again and again, until time, history or the
        schedule say stop."""
        while (batch := self._next_batch(run, destination, lane)) is not None:
            started = workflow.now()
            report = await workflow.execute_activity_method(
                RelayActivities.relay_due_events,
                batch,
                start_to_close_timeout=timedelta(seconds=batch.wait_seconds) + ACTIVITY_MARGIN,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
                summary=_describe(batch),
            )
            self._overrun = max(self._overrun, (workflow.now() - started).total_seconds() - batch.wait_seconds)
            if not report.delivered_here:  # taken out of the configuration since the run started
                self._report.destinations[destination].breaker_detail = "not configured on the workers any more"
                self._show(run)
                return
            self._take(report, run)
            for added in report.worker_destinations:  # configured after this run started
                if added not in self._lanes:
                    self._lanes[added] = []
                    self._report.destinations[added] = DestinationStory()
                    while len(self._lanes[added]) < min(QUIET_LANES, run.lanes):
                        self._open_lane(run, added)
            self._backlog = report.backlog
            if report.paused:
                self._paused = True
            elif report.backlog:  # a claim came back full: work on the destination's backlog at full width
                while len(self._lanes[destination]) < run.lanes:
                    self._open_lane(run, destination)

    def _next_batch(self, run: RelayRun, destination: str, lane: int) -> RelayBatch | None:
        """The next activity's work; None when the run must stop (time, pause) or continue as new (history)."""
        if self._paused or self._reason_to_continue():
            return None
        margin = min(max(REPORT_ESTIMATE.total_seconds(), 1.5 * self._overrun), REPORT_MARGIN_MOST)
        wait = self._seconds_left() - margin
        if wait <= 0:
            return None
        return RelayBatch(
            batch_size=run.batch_size,
            wait_seconds=wait,
            report_after_seconds=REPORT_AFTER_SECONDS,
            schedule_id=run.schedule_id,
            lane=lane,
            breaker_shown=self._report.destinations[destination].breaker,
            destination=destination,
        )

    def _take(self, report: RelayBatchReport, run: RelayRun) -> None:
        """Count the activity's attempts, name its problems in the search attributes, and update the run's page."""
        ours = self._report
        story = ours.destinations[report.destination]
        ours.activities += 1
        ours.heartbeats += report.heartbeats
        ours.breaker_open_seconds += report.breaker_open_seconds
        story.breaker_open_seconds += report.breaker_open_seconds
        story.breaker, story.breaker_detail = report.breaker, report.breaker_detail
        for outcome, count in report.outcomes.items():
            ours.outcomes[outcome] = ours.outcomes.get(outcome, 0) + count
            story.outcomes[outcome] = story.outcomes.get(outcome, 0) + count
        if report.backlog_events >= 0:
            story.backlog_events, story.oldest_waiting_seconds = report.backlog_events, report.oldest_waiting_seconds
            seen = [each for each in ours.destinations.values() if each.backlog_events >= 0]
            ours.backlog_events = sum(each.backlog_events for each in seen)
            ours.oldest_waiting_seconds = max(each.oldest_waiting_seconds for each in seen)
            self._outbox_seen_at = workflow.now()
        outcomes = {SEARCHABLE_OUTCOMES.get(outcome, "RETRY") for outcome in report.outcomes}
        outcomes |= {f"{report.destination}:{outcome}" for outcome in outcomes}
        if outcomes:
            self._budget.add({DELIVERY_OUTCOMES: outcomes})
        for problem in report.problems:
            self._name(problem)
        unreported = sum(count for outcome, count in report.outcomes.items() if outcome != "SENT")
        ours.problem_events += len(report.problems)
        ours.names_left_out_count += max(0, unreported - len(report.problems))  # beyond the report's list
        if self._budget.unsent and workflow.now() - self._names_upserted_at >= timedelta(seconds=NAMES_LEAST_SECONDS):
            self._upsert_names()
        self._show(run)

    def _name(self, problem: EventProblem) -> None:
        """Name the event and its order if they fit the limits (else its order alone); else count it left out."""
        if problem.outcome == "FAILED":
            self._report.failed_events[problem.event_id] = f"{problem.what} at {problem.destination}"
        names = {ORDER_IDS: [problem.order_id], EVENT_IDS: [problem.event_id]}
        if self._budget.fits(names):
            self._budget.add(names)
            return
        del names[EVENT_IDS]
        if self._budget.fits(names):
            self._budget.add(names)
        self._report.names_left_out_count += 1
        if len(self._report.names_left_out) < LEFT_OUT_LISTED:
            self._report.names_left_out.append(
                f"{problem.event_id} order {problem.order_id} {problem.outcome} at {problem.destination}"
            )

    def _upsert_names(self) -> None:
        if self._budget.unsent:
            self._budget.flush()
            self._names_upserted_at = workflow.now()

    def _reason_to_continue(self) -> str | None:
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() >= HISTORY_EVENTS_LIMIT:
            return f"its history is long ({info.get_current_history_length()} events)"
        return None

    def _seconds_left(self) -> float:
        return (self._stop_by - workflow.now()).total_seconds()

    def _show(self, run: RelayRun) -> None:
        """The run's page in words: current details (Markdown, free) and a memo (only when the story changes)."""
        report = self._report
        lanes = len(self._all_lanes()) or 1
        heading = report.ended or f"relaying until {self._stop_by:%H:%M:%S} UTC in {lanes} lane(s)"
        lines = [f"**{heading}**", "", f"**{_counts(report.outcomes)}** in {report.activities} activities"]
        for name, story in report.destinations.items():
            lines += [
                "",
                f"**{name}**: {_counts(story.outcomes)}; {story.breaker_detail or 'breaker ' + story.breaker}",
            ]
            if story.breaker_open_seconds:
                lines.append(f"Breaker open for {story.breaker_open_seconds:.1f} s in this run (deliveries held).")
            if story.backlog_events >= 0:
                oldest = f", the oldest for {story.oldest_waiting_seconds:.1f} s" if story.backlog_events else ""
                seen = f" at {self._outbox_seen_at:%H:%M:%S}" if self._outbox_seen_at else ""
                lines.append(f"Outbox{seen}: {story.backlog_events} events waiting{oldest}.")
        failed = list(report.failed_events.items())
        if failed:
            lines += ["", "**Failed:**"] + [f"- {what} (`{event_id}`)" for event_id, what in failed[:FAILED_SHOWN]]
            if len(failed) > FAILED_SHOWN:
                lines.append(f"- and {len(failed) - FAILED_SHOWN} more: see the result")
        lines += ["", _names_note(report)]
        if run.continued:
            lines.append(f"Continued run {run.continued + 1} of this relay window.")
        workflow.set_current_details("\n".join(lines))
        memo = {
            "failed_events": [f"{what} ({event_id})" for event_id, what in failed[:FAILED_SHOWN]],
            "breakers": {name: story.breaker for name, story in report.destinations.items()},
            "names_left_out": report.names_left_out_count,
            "ended": report.ended or None,
        }
        if report.ended:
            memo["summary"] = _counts(report.outcomes)
        if memo != self._memo:  # each upsert is a history event: only when something changed
            self._memo = memo
            workflow.upsert_memo(memo)


def _counts(outcomes: dict[str, int]) -> str:
    """`sent 120, retried 3, held 2, failed 1 events`: HELD counted apart from retried."""
    parts = [f"sent {outcomes.get('SENT', 0)}"] + [
        f"{word} {outcomes[outcome]}" for outcome, word in WORDS.items() if outcomes.get(outcome)
    ]
    if "RETRY" not in outcomes:
        parts.insert(1, "retried 0")
    if "FAILED" not in outcomes:
        parts.append("failed 0")
    return ", ".join(parts) + " events"


def _names_note(report: RelayReport) -> str:
    """What the run names in its search attributes, and where to find what it left out."""
    named = (
        "Search attributes: `OrderIds` and `EventIds` name the events this run retried, held or failed "
        "(`DeliveryOutcomes` says where: `platform:FAILED`)"
    )
    if not report.names_left_out_count:
        return named + "; events it sent are in `sneaker-orders events show EVENT_ID` (every attempt, with its run)."
    return (
        f"{named}, but **{report.names_left_out_count} are left out** (Temporal's limit: 2 KiB per value). "
        "They are listed in the run's result (`names_left_out`), and every attempt is kept with its run id: "
        "`sneaker-orders events list --status PENDING` / `--status FAILED`, `sneaker-orders events show EVENT_ID`, "
        "`GET /events?status=FAILED`."
    )


def run_deadline(now: datetime, interval: timedelta, run_length: timedelta) -> datetime:
    """When a run started `now` stops starting activities: just before the last schedule tick within `run_length`
    (at least the next tick; ticks fall on whole multiples of the interval since the epoch), and not before
    MIN_WINDOW has passed."""
    next_tick = EPOCH + ((now - EPOCH) // interval + 1) * interval
    last_tick_in_run = EPOCH + ((now + run_length - EPOCH) // interval) * interval
    return max(max(next_tick, last_tick_in_run) - TICK_MARGIN, now + MIN_WINDOW)


def _describe(batch: RelayBatch) -> str:
    """The activity summary the Web UI shows."""
    held = " (failing: probe it)" if batch.breaker_shown == "OPEN" else ""
    return f"{batch.destination} lane {batch.lane}: keep up to {batch.batch_size} due events in flight{held}"
