"""The relay's activity: claim due events under a lease, deliver them, record every attempt, and say what happened.

One activity both claims and delivers (a claim without a delivery costs Temporal a round trip per
batch for nothing). It keeps going, batch after batch, until the run cannot name more events, it
has worked for `report_after_seconds`, its window is over, the schedule is paused, the breaker is
not as the run shows it, or the worker shuts down; then it reports every attempt it made.
"""

import asyncio
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.delivery_tracing import DeliverySpans
from activities.delivery_verdicts import breaker_rule, delivery_policy, judge_answers
from activities.payloads import RelayBatch, RelayBatchReport
from activities.platform import AttemptFacts, PlatformClient
from activities.relay_metrics import (
    ATTEMPTS,
    BREAKER_OPEN,
    CLAIMS_GIVEN_BACK,
    COMMIT_TO_ACK,
    IN_FLIGHT,
    LEASES_EXPIRED,
    status_class,
)
from activities.schedule_pause import SchedulePauseWatch
from db.outbox.breaker import BreakerChange, breaker_of, drain_backlog, ensure_breaker, release_probe, take_probe
from db.outbox.claims import (
    Claim,
    LeasedEvent,
    ReleasedLease,
    claim_due_events,
    give_back_claims,
    release_expired_leases,
    release_leases,
)
from db.outbox.outcomes import AttemptOutcome, Run, attempts_of_run, record_attempts
from sneaker_orders.settings import Settings
from sneaker_orders.tracing import tracing_is_on

log = logging.getLogger(__name__)
attempt_log = logging.getLogger("sneaker_orders.attempts")

HEARTBEAT_EVERY_SECONDS = 1.0
RELEASE_EXPIRED_EVERY_SECONDS = 5.0
LEASE_NAMESPACE = uuid.UUID("5b7f0c1e-2d4a-4e8f-9a61-7c3b2e9d4f10")
BREAKER_READ_EVERY_SECONDS = 0.25
# While paused, answers already received wait to be recorded until this long before their lease ends.
LEASE_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class _Claimed:
    lease_token: str
    events: list[LeasedEvent]
    claimed_at: float
    probe_token: uuid.UUID | None = None


class RelayActivities:
    """The relay's activity, bound to the worker's engine, platform client, settings and schedule watch."""

    def __init__(
        self,
        engine: AsyncEngine,
        platform: PlatformClient,
        settings: Settings,
        pause_watch: SchedulePauseWatch,
        *,
        poll_interval_seconds: float = 0.05,
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._delivery_policy = delivery_policy(settings)
        self._breaker_rule = breaker_rule(settings)
        self._drain: asyncio.Task | None = None
        self._probe_hold_seconds = settings.relay_http_timeout_seconds + 5
        self._lease_seconds = settings.relay_lease_seconds
        self._delivery_gate = asyncio.Semaphore(settings.relay_delivery_concurrency)
        self._poll_interval = poll_interval_seconds
        self._pause_watch = pause_watch
        self._breaker = ("CLOSED", "")
        self._breaker_read_at = 0.0
        self._next_probe_at: datetime | None = None
        self._spans = DeliverySpans(str(platform.endpoint.events_url)) if tracing_is_on() else None

    @activity.defn
    async def relay_due_events(self, request: RelayBatch) -> RelayBatchReport:
        """Claim and deliver due events while the run allows; every attempt made, by event id."""
        info = activity.info()
        run = Run(info.workflow_id, info.workflow_run_id)
        report = _ReportBuilder()
        if info.attempt > 1:
            await self._take_over_from_earlier_attempts(info, report)
        await ensure_breaker(self._engine, self._platform.endpoint.name)
        pace = _Pace(request)
        lease_token = _lease_token(info, info.attempt)
        remaining = request.max_events - len(report.events)
        while remaining > 0 and not activity.is_worker_shutdown():
            if await self._pause_watch.is_paused(request.schedule_id):
                report.paused = True
                break
            if pace.time_to_release_expired_leases():
                released = await release_expired_leases(self._engine, self._delivery_policy.max_attempts)
                self._report_released(released, run, report)
            claimed = await self._claim_or_probe(min(request.batch_size, remaining), run, lease_token)
            if claimed is not None:
                await self._deliver(claimed, run, report, request.schedule_id, pace)
                remaining -= len(claimed.events)
                report.backlog |= len(claimed.events) == request.batch_size
                report.slowest_batch_seconds = max(report.slowest_batch_seconds, time.monotonic() - claimed.claimed_at)
                pace.delivered()
            if pace.time_to_report() or self._breaker[0] != request.breaker_shown:
                break
            if claimed is None:
                await pace.wait_for_next_poll(self._poll_interval)
        report.breaker, report.breaker_detail = self._breaker
        return report.build()

    async def _take_over_from_earlier_attempts(self, info: activity.Info, report: "_ReportBuilder") -> None:
        """An earlier attempt of this activity died: give back what it still held, and name all it did."""
        earlier = [_lease_token(info, attempt) for attempt in range(1, info.attempt)]
        self._report_released(
            await release_leases(self._engine, earlier, self._delivery_policy.max_attempts), None, None
        )
        for logged in await attempts_of_run(self._engine, info.workflow_run_id, since=info.scheduled_time):
            report.add(
                logged.event_id,
                logged.aggregate_id,
                logged.description,
                logged.outcome,
                logged.error,
                logged.http_status,
            )

    def _report_released(self, released: list[ReleasedLease], run: Run | None, report: "_ReportBuilder | None") -> None:
        """Count and log leases given back; those this run had claimed are its attempts, and named as such."""
        if not released:
            return
        LEASES_EXPIRED.inc(len(released))
        log.warning(
            "gave back %d claims of vanished relays: %s", len(released), ", ".join(r.event_id for r in released[:10])
        )
        for lease in released:
            if report is not None and run is not None and lease.claimed_by_run_id == run.run_id:
                report.add(lease.event_id, lease.aggregate_id, lease.description, "LEASE_EXPIRED", "lease expired")

    async def _claim_or_probe(self, size: int, run: Run, lease_token: uuid.UUID) -> _Claimed | None:
        """Claim due events; while the breaker is open, claim one event to probe with, if this worker may probe now."""
        platform = self._platform.endpoint.name
        claim = Claim(size, self._lease_seconds, run.workflow_id, run.run_id, platform, lease_token=lease_token)
        events = await claim_due_events(self._engine, claim)
        if events:
            return await self._unless_shutting_down(_Claimed(str(lease_token), events, time.monotonic()))
        if not await self._breaker_is_open() or not self._probe_due():
            return None
        probe_token = uuid.uuid4()
        if not await take_probe(self._engine, platform, probe_token, self._probe_hold_seconds):
            return None
        events = await claim_due_events(self._engine, dataclasses.replace(claim, batch_size=1, probe=True))
        if not events:
            await release_probe(self._engine, platform, probe_token, self._breaker_rule)
            return None
        log.info("probing %s with event %s", platform, events[0].event_id)
        return await self._unless_shutting_down(_Claimed(str(lease_token), events, time.monotonic(), probe_token))

    async def _unless_shutting_down(self, claimed: _Claimed) -> _Claimed | None:
        if not activity.is_worker_shutdown():
            return claimed
        await self._give_back(claimed.lease_token)  # nobody here will deliver them
        return None

    async def _give_back(self, lease_token: str) -> None:
        given_back = await give_back_claims(self._engine, lease_token)
        if given_back:
            CLAIMS_GIVEN_BACK.inc(given_back)

    async def _breaker_is_open(self) -> bool:
        """The breaker as stored, read at most every BREAKER_READ_EVERY_SECONDS."""
        if time.monotonic() - self._breaker_read_at >= BREAKER_READ_EVERY_SECONDS:
            breaker = await breaker_of(self._engine, self._platform.endpoint.name)
            if breaker is not None:
                self._show_breaker(breaker.state, breaker.describe())
                self._next_probe_at = breaker.next_probe_at
                if breaker.draining:
                    self._start_drain()  # the worker whose probe closed it may be gone
            self._breaker_read_at = time.monotonic()
        return self._breaker[0] == "OPEN"

    def _probe_due(self) -> bool:
        """Whether the breaker, as last read, is due for a probe (take_probe decides for certain)."""
        return self._next_probe_at is None or self._next_probe_at <= datetime.now(UTC)

    def _show_breaker(self, state: str, detail: str) -> None:
        if state != self._breaker[0]:
            log.warning("%s", detail)
        self._breaker = (state, detail)
        BREAKER_OPEN.labels(self._platform.endpoint.name).set(1 if state == "OPEN" else 0)

    async def _deliver(
        self, claimed: _Claimed, run: Run, report: "_ReportBuilder", schedule_id: str | None, pace: "_Pace"
    ) -> None:
        """Send every claimed event, then record each attempt; while tracing, each attempt is a span."""
        spans: dict[str, Span] = {}  # by event id, ended as each attempt is recorded
        try:
            await self._send_and_record(claimed, run, report, schedule_id, pace, spans)
        finally:
            for span in spans.values():
                DeliverySpans.abandon(span, "the attempt's outcome was not recorded (paused or shut down)")

    async def _send_and_record(
        self,
        claimed: _Claimed,
        run: Run,
        report: "_ReportBuilder",
        schedule_id: str | None,
        pace: "_Pace",
        spans: dict[str, Span],
    ) -> None:
        """Send every claimed event, then record each attempt; cut short by shutdown, keep what was learnt."""
        facts: list[tuple[LeasedEvent, AttemptFacts]] = []
        # Answers may all be slow (up to RELAY_HTTP_TIMEOUT_SECONDS each, queued behind the delivery gate):
        # heartbeat meanwhile, so a healthy activity is never taken for a dead one.
        heartbeats = asyncio.create_task(pace.heartbeat_every_second())
        try:
            await asyncio.gather(*(self._send(event, facts, spans) for event in claimed.events))
        except asyncio.CancelledError:
            # The worker is going away: record what was learnt, hand the rest back to another relay.
            await asyncio.shield(self._record(claimed, facts, run, report, spans))
            await asyncio.shield(self._give_back(claimed.lease_token))
            raise
        finally:
            heartbeats.cancel()
        if not await self._may_record(schedule_id, claimed, pace):
            for event, _ in facts:
                report.add(event.event_id, event.aggregate_id, event.description, "LEASE_EXPIRED", "paused")
            return
        await self._record(claimed, facts, run, report, spans)

    async def _send(
        self, event: LeasedEvent, facts: list[tuple[LeasedEvent, AttemptFacts]], spans: dict[str, Span]
    ) -> None:
        async with self._delivery_gate:
            traceparent = None
            if self._spans is not None:
                spans[event.event_id], traceparent = self._spans.start(event)
            IN_FLIGHT.inc()
            try:
                facts.append((event, await self._platform.send(event, traceparent)))
            finally:
                IN_FLIGHT.dec()

    async def _may_record(self, schedule_id: str | None, claimed: _Claimed, pace: "_Pace") -> bool:
        """False if the schedule was paused (and stayed paused) before these outcomes could be recorded."""
        give_up_at = claimed.claimed_at + self._lease_seconds - LEASE_MARGIN_SECONDS
        while await self._pause_watch.is_paused(schedule_id):
            if time.monotonic() >= give_up_at or activity.is_worker_shutdown():
                log.warning(
                    "schedule %s paused before %d outcomes were recorded; their leases will expire",
                    schedule_id,
                    len(claimed.events),
                )
                return False
            pace.heartbeat()
            await asyncio.sleep(0.25)
        return True

    async def _record(
        self,
        claimed: _Claimed,
        facts: list[tuple[LeasedEvent, AttemptFacts]],
        run: Run,
        report: "_ReportBuilder",
        spans: dict[str, Span],
    ) -> None:
        """Note the answers on the breaker, judge each attempt (HELD while the breaker is open), record them all."""
        if not facts:
            return
        platform, rule, policy = self._platform.endpoint.name, self._breaker_rule, self._delivery_policy
        change, attempts = await judge_answers(self._engine, platform, rule, policy, facts, claimed.probe_token)
        self._note_breaker(change)
        logged = await record_attempts(self._engine, claimed.lease_token, attempts, run)
        for (event, fact), attempt in zip(facts, attempts, strict=True):
            outcome = logged.get(event.event_id, "STALE")
            self._observe(event, fact, attempt, outcome, run)
            if (span := spans.pop(event.event_id, None)) is not None:
                DeliverySpans.finish(span, fact, outcome, attempt.error, run)
            report.add(event.event_id, event.aggregate_id, event.description, outcome, attempt.error, fact.http_status)

    def _note_breaker(self, change: BreakerChange) -> None:
        self._next_probe_at = None  # read it afresh
        if change.opened_now or change.closed_now or change.state != self._breaker[0]:
            self._breaker_read_at = 0.0  # read the details afresh on the next look
            self._show_breaker(change.state, f"breaker {change.state}")
            if change.closed_now:
                log.warning("the platform answers again: breaker CLOSED, every event in backoff is due now")
                self._start_drain()

    def _start_drain(self) -> None:
        """Make the backlog due, in bounded batches, beside deliveries (never in their way); one drain at a time."""
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(
                drain_backlog(self._engine, self._platform.endpoint.name, self._breaker_rule)
            )
            self._drain.add_done_callback(_log_drain)

    def _observe(self, event: LeasedEvent, fact: AttemptFacts, attempt: AttemptOutcome, outcome: str, run: Run) -> None:
        """The attempt's metrics and its one log line."""
        ATTEMPTS.labels(outcome, status_class(fact.http_status)).inc()
        if outcome == "SENT":
            acknowledged = fact.attempted_at.timestamp() + fact.duration_ms / 1000
            COMMIT_TO_ACK.observe(max(0.0, acknowledged - event.occurred_at.timestamp()))
        fields = {
            "event_id": event.event_id,
            "order_id": event.aggregate_id,
            "sequence": event.sequence,
            "attempt": event.attempt,
            "outcome": outcome,
            "http_status": fact.http_status,
            "workflow_id": run.workflow_id,
            "run_id": run.run_id,
            "error": attempt.error,
        }
        attempt_log.log(
            logging.INFO if outcome == "SENT" else logging.WARNING,
            "attempt event_id=%s order_id=%s sequence=%d attempt=%d outcome=%s http_status=%s workflow_id=%s "
            "run_id=%s%s",
            *list(fields.values())[:-1],
            f" error={attempt.error}" if attempt.error else "",
            extra=fields,
        )


def _log_drain(drain: asyncio.Task) -> None:
    """A drain that failed is resumed by the next worker to read the breaker; say so, do not lose the error."""
    if not drain.cancelled() and (failure := drain.exception()) is not None:
        log.warning("draining the backlog after the breaker closed failed (resumed later): %s", failure)
    elif not drain.cancelled():
        log.info("breaker closed: %d events in backoff made due", drain.result())


def _lease_token(info: activity.Info, attempt: int) -> uuid.UUID:
    """The lease of one attempt of one activity: a later attempt knows what an earlier one held."""
    return uuid.uuid5(LEASE_NAMESPACE, f"{info.workflow_run_id}/{info.activity_id}/{attempt}")


class _Pace:
    """One activity's clock: when its window ends, when it should report, and heartbeats at most every second."""

    def __init__(self, request: RelayBatch) -> None:
        self._deadline = time.monotonic() + request.wait_seconds
        self._report_after = request.report_after_seconds
        self._report_by: float | None = None
        self._last_heartbeat = 0.0
        self._next_release = 0.0

    def time_to_release_expired_leases(self) -> bool:
        """At the activity's start, then every few seconds: claims of vanished relays come back soon."""
        now = time.monotonic()
        if now < self._next_release:
            return False
        self._next_release = now + RELEASE_EXPIRED_EVERY_SECONDS
        return True

    def delivered(self) -> None:
        if self._report_by is None:
            self._report_by = time.monotonic() + self._report_after

    def time_to_report(self) -> bool:
        now = time.monotonic()
        return now >= self._deadline or (self._report_by is not None and now >= self._report_by)

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            activity.heartbeat()

    async def heartbeat_every_second(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
            self.heartbeat()

    async def wait_for_next_poll(self, interval: float) -> None:
        """Wait one poll interval (less if the window ends or the worker starts shutting down)."""
        self.heartbeat()
        seconds = max(0.0, min(interval, self._deadline - time.monotonic()))
        shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
        try:
            await asyncio.wait([shutdown], timeout=seconds)
        finally:
            shutdown.cancel()


class _ReportBuilder:
    """Collects what one activity's attempts did into the report the run shows."""

    def __init__(self) -> None:
        self.paused = False
        self.backlog = False
        self.slowest_batch_seconds = 0.0
        self.breaker = "CLOSED"
        self.breaker_detail = ""
        self.events: set[str] = set()
        self._lines: list[str] = []

    def add(
        self,
        event_id: str,
        order_id: str,
        description: str,
        outcome: str,
        error: str | None,
        http_status: int | None = None,
    ) -> None:
        detail = "" if outcome == "SENT" else f" {description}: {error or outcome}"
        self._lines.append(f"{event_id} {order_id} {outcome} {http_status or '-'}{detail}"[:300])
        self.events.add(event_id)

    def build(self) -> RelayBatchReport:
        return RelayBatchReport(
            attempts="\n".join(self._lines),
            breaker=self.breaker,
            breaker_detail=self.breaker_detail,
            paused=self.paused,
            backlog=self.backlog,
            slowest_batch_seconds=self.slowest_batch_seconds,
        )
