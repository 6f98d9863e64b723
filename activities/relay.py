"""The relay's activity: keep due events in flight under a lease, record each answer as it comes, say what happened.

One activity claims, delivers and records (a claim without a delivery costs Temporal a round trip
for nothing). It keeps about `batch_size` requests in flight: each answer is recorded (with the
others that arrived meanwhile, in one statement) as soon as it comes, and claiming refills the free
slots, so a request that hangs until RELAY_HTTP_TIMEOUT_SECONDS costs one slot, not a batch. It
reports to the run after `report_after_seconds` of delivery, when its window ends, the schedule is
paused, the breaker is not as the run shows it, or the worker shuts down. Requests still in flight
then are handed over, not waited for: the next activity of the same lane of the same schedule on
this worker adopts them (records and reports them under its run); if none comes within
ADOPT_GRACE_SECONDS, they are recorded under the run that claimed them.
"""

import asyncio
import dataclasses
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.accepted_tally import AcceptedTally
from activities.delivery_tracing import DeliverySpans
from activities.delivery_verdicts import breaker_rule, delivery_policy, judge_answers
from activities.payloads import EventProblem, RelayBatch, RelayBatchReport
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
    backlog_of_outbox,
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
# Requests still in flight when an activity reports wait this long for the lane's next activity.
ADOPT_GRACE_SECONDS = 2.0
# Lanes every run opens at its start (workflows/relay.py, QUIET_LANES): only they keep claiming across a run's end.
ALWAYS_OPEN_LANES = 2
# The outbox's backlog is counted for the run's page at most this often per worker.
BACKLOG_EVERY_SECONDS = 2.0
# A report names at most this many attempts with a problem (a run names far fewer; the rest are counted).
PROBLEMS_REPORTED_MOST = 500
# The SDK sends a heartbeat at most every 0.8 x the heartbeat timeout (the rest are coalesced).
HEARTBEAT_THROTTLE = 0.8
# A first attempt of an event written this recently is live: it goes before a backlog's events, both
# in the claim (db/outbox/claims.py) and at the delivery gate.
LIVE_SECONDS = 10.0
# Events claimed but not yet answered, per worker, at most this many times its delivery concurrency:
# enough to refill a slot at once, few enough that a claimed event never queues long behind others.
CLAIMED_PER_SLOT = 1.5
# A request unanswered this long gives its delivery slot to another (it keeps its connection and its
# claim): a platform that never answers some events costs their lanes a slot each, never the worker's
# delivery concurrency. The transport allows STRAGGLER_CONNECTIONS_PER_SLOT connections per slot.
STRAGGLER_SECONDS = 0.5
STRAGGLER_CONNECTIONS_PER_SLOT = 2
# A lane claims when this share of its slots (1/REFILL_SHARE) is free, and records answers once that
# many have come: statements of tens of events, not of one (PostgreSQL's cost is per statement).
REFILL_SHARE = 4
# Answers wait at most this long to be recorded together with others (up to a quarter of a lane's slots),
# unless one of them is a live event's: two statements per answer would cost PostgreSQL more than the
# delivery itself.
RECORD_GATHER_SECONDS = 0.05


class _DeliveryGate:
    """At most `slots` requests at once; a live event waiting for a slot goes before a backlog's events."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._order = itertools.count()

    async def acquire(self, live: bool) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if live else 1, next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # the slot came just as the wait was cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1


@dataclass(eq=False)
class _InFlight:
    """One request: the event, the lease and probe it was claimed under, its span, and its answer once it came."""

    event: LeasedEvent
    lease_token: str
    probe_token: uuid.UUID | None
    span: Span | None = None
    facts: AttemptFacts | None = None
    task: asyncio.Task | None = None  # a strong reference: the event loop keeps only weak ones
    live: bool = False


class _Lane:
    """What one lane of a relay holds on this worker: requests in flight and answers not yet recorded.

    It outlives the activity that claimed them: the lane's next activity adopts it (and its `run`).
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.in_flight: set[_InFlight] = set()
        self.answered: list[_InFlight] = []
        self.arrived = asyncio.Event()  # an answer waits to be recorded
        self.freed = asyncio.Event()  # a slot was freed since the claimer last looked
        self.sweeper: asyncio.Task | None = None
        self.bridging = False  # the sweeper keeps the lane claiming until its next activity comes

    def answer(self, attempt: _InFlight) -> None:
        self.in_flight.discard(attempt)
        self.answered.append(attempt)
        self.arrived.set()
        self.freed.set()

    def take_answers(self) -> list[_InFlight]:
        answered, self.answered = self.answered, []
        self.arrived.clear()
        return answered

    @property
    def held(self) -> int:
        return len(self.in_flight) + len(self.answered)


class DestinationRelay:
    """The relay of one destination on this worker: its client, breaker, delivery slots and lanes, apart from every
    other destination's, so that one destination down, slow or hostile never delays another."""

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
        self._delivery_gate = _DeliveryGate(settings.relay_delivery_concurrency)
        self._most_claimed = max(1, int(settings.relay_delivery_concurrency * CLAIMED_PER_SLOT))
        self._claimed = 0  # events this worker claimed and has not yet had answered
        self._poll_interval = poll_interval_seconds
        # An empty claim by any lane of this worker: no lane of it claims again before this (a full claim clears it),
        # so an idle worker polls once per interval however many lanes wait.
        self._next_empty_claim = 0.0
        self._stopping = False  # the worker shuts down
        self._pause_watch = pause_watch
        self._breaker = ("CLOSED", "")
        self._breaker_read_at = 0.0
        self._next_probe_at: datetime | None = None
        self._open_since: float | None = None
        self._open_total = 0.0
        self._backlog_read_at = -BACKLOG_EVERY_SECONDS
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._destination = platform.endpoint.name
        for metric in (CLAIMS_GIVEN_BACK, LEASES_EXPIRED, IN_FLIGHT, BREAKER_OPEN):
            metric.labels(self._destination)  # each destination's series exists (at 0) before its first change
        self._spans = DeliverySpans(str(platform.endpoint.events_url)) if tracing_is_on() else None
        # Accepted answers on a closed breaker: one breaker statement per FLUSH_SECONDS, not one per group.
        self._accepted = AcceptedTally(engine, self._destination, self._breaker_rule, self._note_breaker)

    async def relay(self, request: RelayBatch) -> RelayBatchReport:
        """Keep due events in flight, record each answer as it comes; what happened, in counts and problems."""
        info = activity.info()
        run = Run(info.workflow_id, info.workflow_run_id)
        report = _ReportBuilder(self._destination)
        if info.attempt > 1:
            await self._take_over_from_earlier_attempts(info, request.lane, report)
        await ensure_breaker(self._engine, self._destination)
        key = (request.schedule_id or info.workflow_id, request.lane)
        lane = self._adopt(key, run)
        pace = _Pace(request, info)
        open_before = self._open_seconds_total()
        await self._look_at_backlog(report)  # now, not at the end: reporting stays quick
        try:
            lease_token = _lease_token(info.workflow_run_id, self._destination, request.lane)
            await self._relay(request, lane, run, lease_token, pace, report)
            if activity.is_worker_shutdown():
                self._stopping = True  # no bridge claims any more: what it would claim would wait for its lease
                await self._finish(lane, pace, report)
                await self._accepted.flush()
            elif report.paused:
                await self._finish_paused(lane, request.schedule_id, pace, report)
            else:
                await self._record(lane, report)
                claim = Claim(
                    request.batch_size,
                    self._lease_seconds,
                    run.workflow_id,
                    run.run_id,
                    self._destination,
                    lease_token=lease_token,
                )
                # Every run opens the first lanes at its start; a wider lane may not come back after a run's end.
                bridged = request.lane <= ALWAYS_OPEN_LANES and pace.window_over()
                self._hand_over(key, lane, request.schedule_id, claim if bridged else None)
        except asyncio.CancelledError:
            # The worker is going away: record what was learnt, hand the rest back to another relay.
            await asyncio.shield(self._record(lane, report))
            await asyncio.shield(self._give_back(lane))
            await asyncio.shield(self._accepted.flush())
            raise
        except Exception:
            self._hand_over(key, lane, request.schedule_id)  # the activity's next attempt takes it up
            raise
        report.breaker, report.breaker_detail = self._breaker
        report.breaker_open_seconds = self._open_seconds_total() - open_before
        report.heartbeats = pace.heartbeats
        return report.build()

    async def _relay(
        self,
        request: RelayBatch,
        lane: _Lane,
        run: Run,
        lease_token: uuid.UUID,
        pace: "_Pace",
        report: "_ReportBuilder",
    ) -> None:
        """Record answers as they come (one task) and refill the free slots (this one), until it is time to report.

        Apart, so that a slow claim never delays a record, nor a slow record a claim.
        """
        stop = asyncio.Event()
        enough = max(1, request.batch_size // REFILL_SHARE)
        recorder = asyncio.create_task(self._keep_recording(lane, report, stop, enough))
        try:
            await self._keep_claiming(request, lane, run, lease_token, pace, report)
        except BaseException:
            recorder.cancel()
            raise
        stop.set()
        lane.arrived.set()
        await recorder

    async def _keep_recording(self, lane: _Lane, report: "_ReportBuilder", stop: asyncio.Event, enough: int) -> None:
        while True:
            await lane.arrived.wait()
            if stop.is_set():
                return
            # A statement per answer would cost PostgreSQL more than the delivery: let a few gather.
            gather_until = time.monotonic() + RECORD_GATHER_SECONDS
            while (
                len(lane.answered) < enough
                and lane.in_flight
                and time.monotonic() < gather_until
                and not any(attempt.live for attempt in lane.answered)
            ):
                lane.arrived.clear()
                await _wait_at_most(lane.arrived, gather_until - time.monotonic())
            await self._record(lane, report)

    async def _keep_claiming(
        self,
        request: RelayBatch,
        lane: _Lane,
        run: Run,
        lease_token: uuid.UUID,
        pace: "_Pace",
        report: "_ReportBuilder",
    ) -> None:
        refill_at = max(1, request.batch_size // REFILL_SHARE)
        while not activity.is_worker_shutdown():
            if await self._pause_watch.is_paused(request.schedule_id):
                report.paused = True
                return
            if pace.time_to_release_expired_leases():
                released = await release_expired_leases(self._engine, self._delivery_policy.max_attempts)
                self._report_released(released, run, report)
            lane.freed.clear()
            room = min(request.batch_size - len(lane.in_flight), self._most_claimed - self._claimed)
            claimed = []
            if room > 0 and (room >= refill_at or not lane.in_flight) and time.monotonic() >= self._next_empty_claim:
                claimed = await self._claim_or_probe(room, run, lease_token)
                if claimed:
                    self._start(claimed, lane)
                    report.backlog |= len(claimed) >= room
                    if len(claimed) >= room:
                        self._next_empty_claim = 0.0  # more is due: every lane claims at once
                    pace.delivered()
                else:
                    self._next_empty_claim = time.monotonic() + self._poll_interval
            pace.heartbeat()
            if pace.time_to_report() or self._breaker[0] != request.breaker_shown:
                return
            if not claimed:
                wait = max(0.0, self._next_empty_claim - time.monotonic()) or self._poll_interval
                await pace.wait_for(lane.freed, wait)

    def _adopt(self, key: tuple[str, int], run: Run) -> _Lane:
        """The lane's requests left by its previous activity on this worker, now this run's; or a new lane."""
        lane = self._lanes.pop(key, None)
        if lane is None:
            return _Lane(run)
        if lane.sweeper is not None and not lane.bridging:  # a bridge ends by itself: never cut a claim in two
            lane.sweeper.cancel()
        lane.sweeper = None
        lane.run = run
        return lane

    def _hand_over(
        self, key: tuple[str, int], lane: _Lane, schedule_id: str | None, bridge: Claim | None = None
    ) -> None:
        """Leave what is in flight to the lane's next activity (with `bridge`, keep the lane claiming until it
        comes); if none comes soon, record it under this run."""
        if not lane.held and bridge is None:
            return
        self._lanes[key] = lane
        lane.sweeper = asyncio.create_task(self._record_unadopted(key, lane, schedule_id, bridge))

    async def _record_unadopted(
        self, key: tuple[str, int], lane: _Lane, schedule_id: str | None, bridge: Claim | None
    ) -> None:
        if bridge is None:
            await asyncio.sleep(ADOPT_GRACE_SECONDS)
        else:
            lane.bridging = True
            try:
                await self._bridge(key, lane, schedule_id, bridge)
            finally:
                lane.bridging = False
        if self._lanes.get(key) is not lane:
            return
        del self._lanes[key]
        lane.sweeper = None
        give_up_at = time.monotonic() + self._lease_seconds - LEASE_MARGIN_SECONDS - ADOPT_GRACE_SECONDS
        while lane.held:
            if lane.in_flight:
                await _wait_at_most(lane.arrived, self._poll_interval)
            while await self._pause_watch.is_paused(schedule_id):  # no state changes while paused
                if time.monotonic() >= give_up_at:
                    return  # their leases expire and give them back
                await asyncio.sleep(0.25)
            await self._record(lane, None)

    async def _bridge(self, key: tuple[str, int], lane: _Lane, schedule_id: str | None, claim: Claim) -> None:
        """Between two activities of a lane (a report, a run's end): keep its slots full under the last activity's
        lease, until the next activity adopts the lane (and records, reports and names what came meanwhile under
        its run), for ADOPT_GRACE_SECONDS at most."""
        until = time.monotonic() + ADOPT_GRACE_SECONDS
        refill_at = max(1, claim.batch_size // REFILL_SHARE)
        while self._lanes.get(key) is lane and time.monotonic() < until and not self._stopping:
            lane.freed.clear()
            room = min(claim.batch_size - len(lane.in_flight), self._most_claimed - self._claimed)
            if (
                room > 0
                and (room >= refill_at or not lane.in_flight)
                and time.monotonic() >= self._next_empty_claim
                and self._breaker[0] == "CLOSED"
                and not await self._pause_watch.is_paused(schedule_id)
            ):
                events = await claim_due_events(self._engine, dataclasses.replace(claim, batch_size=room))
                if events:
                    self._start([_InFlight(event, str(claim.lease_token), None) for event in events], lane)
                else:
                    self._next_empty_claim = time.monotonic() + self._poll_interval
            await _wait_at_most(lane.freed, min(self._poll_interval, until - time.monotonic()))

    async def _finish(self, lane: _Lane, pace: "_Pace", report: "_ReportBuilder") -> None:
        """The worker shuts down: let the requests in flight end (the grace period cancels the rest), record them."""
        while lane.in_flight:
            pace.heartbeat()
            await pace.wait_for(lane.arrived, HEARTBEAT_EVERY_SECONDS)
            await self._record(lane, report)
        await self._record(lane, report)

    async def _finish_paused(
        self, lane: _Lane, schedule_id: str | None, pace: "_Pace", report: "_ReportBuilder"
    ) -> None:
        """Paused: answers are recorded only if the pause ends before their leases do; else the leases expire."""
        while lane.in_flight:
            pace.heartbeat()
            await pace.wait_for(lane.arrived, HEARTBEAT_EVERY_SECONDS)
        give_up_at = time.monotonic() + self._lease_seconds - LEASE_MARGIN_SECONDS - pace.seconds_since_start()
        while await self._pause_watch.is_paused(schedule_id):
            if time.monotonic() >= give_up_at or activity.is_worker_shutdown():
                log.warning(
                    "schedule %s paused before %d outcomes were recorded; their leases will expire",
                    schedule_id,
                    len(lane.answered),
                )
                for attempt in lane.take_answers():
                    event = attempt.event
                    if attempt.span is not None:
                        DeliverySpans.abandon(attempt.span, "the attempt's outcome was not recorded (paused)")
                    report.add(event.event_id, event.aggregate_id, event.description, "LEASE_EXPIRED", "paused")
                return
            pace.heartbeat()
            await asyncio.sleep(0.25)
        await self._record(lane, report)

    async def _take_over_from_earlier_attempts(self, info: activity.Info, lane: int, report: "_ReportBuilder") -> None:
        """An earlier attempt of this activity died: give back what the lane still held, and name what it did."""
        earlier = [_lease_token(info.workflow_run_id, self._destination, lane)]
        self._report_released(
            await release_leases(self._engine, earlier, self._delivery_policy.max_attempts), None, None
        )
        logged_attempts = await attempts_of_run(
            self._engine, info.workflow_run_id, self._destination, since=info.scheduled_time
        )
        for logged in logged_attempts:
            if logged.outcome != "SENT":
                report.add(
                    logged.event_id,
                    logged.aggregate_id,
                    logged.description,
                    logged.outcome,
                    logged.error,
                    logged.http_status,
                    counted=False,
                )

    def _report_released(self, released: list[ReleasedLease], run: Run | None, report: "_ReportBuilder | None") -> None:
        """Count and log leases given back; those this run had claimed here are its attempts, and named as such."""
        if not released:
            return
        for lease in released:
            LEASES_EXPIRED.labels(lease.destination).inc()
        log.warning(
            "gave back %d claims of vanished relays: %s",
            len(released),
            ", ".join(f"{r.event_id} ({r.destination})" for r in released[:10]),
        )
        for lease in released:
            if (
                report is not None
                and run is not None
                and lease.claimed_by_run_id == run.run_id
                and lease.destination == self._destination
            ):
                report.add(lease.event_id, lease.aggregate_id, lease.description, "LEASE_EXPIRED", "lease expired")

    async def _claim_or_probe(self, size: int, run: Run, lease_token: uuid.UUID) -> list[_InFlight]:
        """Claim due events; while the breaker is open, claim one event to probe with, if this worker may probe now."""
        destination = self._destination
        claim = Claim(size, self._lease_seconds, run.workflow_id, run.run_id, destination, lease_token=lease_token)
        events = await claim_due_events(self._engine, claim)
        if events:
            return [_InFlight(event, str(lease_token), None) for event in events]
        if not await self._breaker_is_open() or not self._probe_due():
            return []
        probe_token = uuid.uuid4()
        if not await take_probe(self._engine, destination, probe_token, self._probe_hold_seconds):
            return []
        events = await claim_due_events(self._engine, dataclasses.replace(claim, batch_size=1, probe=True))
        if not events:
            await release_probe(self._engine, destination, probe_token, self._breaker_rule)
            return []
        log.info("probing %s with event %s", destination, events[0].event_id)
        return [_InFlight(events[0], str(lease_token), probe_token)]

    def _start(self, claimed: list[_InFlight], lane: _Lane) -> None:
        """Send each claimed event on its own; its answer goes to whichever activity holds the lane then."""
        now = datetime.now(UTC)
        for attempt in claimed:
            lane.in_flight.add(attempt)
            attempt.live = (
                attempt.event.attempt == 1 and (now - attempt.event.occurred_at).total_seconds() < LIVE_SECONDS
            )
            attempt.task = asyncio.create_task(self._send(attempt, lane, attempt.live))

    async def _send(self, attempt: _InFlight, lane: _Lane, live: bool) -> None:
        # Counted as claimed until it gives its slot up (answered, or straggling): a request that hangs
        # costs its lane a slot, never the worker's claims.
        self._claimed += 1
        try:
            await self._delivery_gate.acquire(live)
        except BaseException:
            self._claimed -= 1
            raise
        slot = _Slot(self._delivery_gate, self._unclaim)
        straggling = asyncio.get_running_loop().call_later(STRAGGLER_SECONDS, slot.give_up)
        try:
            traceparent = None
            if self._spans is not None:
                attempt.span, traceparent = self._spans.start(attempt.event)
            in_flight = IN_FLIGHT.labels(self._destination)
            in_flight.inc()
            try:
                attempt.facts = await self._platform.send(attempt.event, traceparent)
            finally:
                in_flight.dec()
        finally:
            straggling.cancel()
            slot.give_up()
        lane.answer(attempt)

    def _unclaim(self) -> None:
        self._claimed -= 1

    async def _give_back(self, lane: _Lane) -> None:
        """Stop the lane's requests still in flight and hand their claims back to PENDING, due now."""
        stopped = list(lane.in_flight)
        lane.in_flight.clear()
        for attempt in stopped:
            attempt.task.cancel()
            if attempt.span is not None:
                DeliverySpans.abandon(attempt.span, "the attempt's outcome was not recorded (shut down)")
        for lease_token in {attempt.lease_token for attempt in stopped}:
            given_back = await give_back_claims(self._engine, lease_token)
            if given_back:
                CLAIMS_GIVEN_BACK.labels(self._destination).inc(given_back)

    async def _breaker_is_open(self) -> bool:
        """The breaker as stored, read at most every BREAKER_READ_EVERY_SECONDS."""
        if time.monotonic() - self._breaker_read_at >= BREAKER_READ_EVERY_SECONDS:
            breaker = await breaker_of(self._engine, self._destination)
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
        now = time.monotonic()
        if state == "OPEN" and self._open_since is None:
            self._open_since = now
        elif state != "OPEN" and self._open_since is not None:
            self._open_total += now - self._open_since
            self._open_since = None
        self._breaker = (state, detail)
        BREAKER_OPEN.labels(self._destination).set(1 if state == "OPEN" else 0)

    def _open_seconds_total(self) -> float:
        """How long this worker has seen the breaker open, in all (the current opening included)."""
        current = time.monotonic() - self._open_since if self._open_since is not None else 0.0
        return self._open_total + current

    async def _look_at_backlog(self, report: "_ReportBuilder") -> None:
        if time.monotonic() - self._backlog_read_at < BACKLOG_EVERY_SECONDS:
            return
        self._backlog_read_at = time.monotonic()
        backlog = await backlog_of_outbox(self._engine, self._destination)
        report.backlog_events, report.oldest_waiting_seconds = backlog.waiting, backlog.oldest_waiting_seconds

    async def _record(self, lane: _Lane, report: "_ReportBuilder | None") -> None:
        """Record the lane's answers that came: one group per lease (and per probe), under the lane's run."""
        answered = lane.take_answers()
        groups: dict[tuple[str, uuid.UUID | None], list[_InFlight]] = {}
        for attempt in answered:
            groups.setdefault((attempt.lease_token, attempt.probe_token), []).append(attempt)
        for (lease_token, probe_token), group in groups.items():
            await self._record_group(lease_token, probe_token, group, lane.run, report)

    async def _record_group(
        self,
        lease_token: str,
        probe_token: uuid.UUID | None,
        group: list[_InFlight],
        run: Run,
        report: "_ReportBuilder | None",
    ) -> None:
        """Note the answers on the breaker, judge each attempt (HELD while the breaker is open), record them all."""
        facts = [(attempt.event, attempt.facts) for attempt in group]
        destination, rule, policy = self._destination, self._breaker_rule, self._delivery_policy
        tally = self._accepted if self._breaker[0] == "CLOSED" else None
        change, attempts = await judge_answers(self._engine, destination, rule, policy, facts, probe_token, tally)
        self._note_breaker(change)
        logged = await record_attempts(self._engine, destination, lease_token, attempts, run)
        for attempt_in_flight, attempt in zip(group, attempts, strict=True):
            event, fact = attempt_in_flight.event, attempt_in_flight.facts
            outcome = logged.get(event.event_id, "STALE")
            self._observe(event, fact, attempt, outcome, run)
            if attempt_in_flight.span is not None:
                DeliverySpans.finish(attempt_in_flight.span, fact, outcome, attempt.error, run)
            if report is not None:
                report.add(
                    event.event_id, event.aggregate_id, event.description, outcome, attempt.error, fact.http_status
                )

    def _note_breaker(self, change: BreakerChange) -> None:
        self._next_probe_at = None  # read it afresh
        if change.opened_now or change.closed_now or change.state != self._breaker[0]:
            self._breaker_read_at = 0.0  # read the details afresh on the next look
            self._show_breaker(change.state, f"breaker {change.state}")
            if change.closed_now:
                log.warning("%s answers again: breaker CLOSED, every event in backoff is due now", self._destination)
                self._start_drain()

    def _start_drain(self) -> None:
        """Make the backlog due, in bounded batches, beside deliveries (never in their way); one drain at a time."""
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(drain_backlog(self._engine, self._destination, self._breaker_rule))
            self._drain.add_done_callback(_log_drain)

    def _observe(self, event: LeasedEvent, fact: AttemptFacts, attempt: AttemptOutcome, outcome: str, run: Run) -> None:
        """The attempt's metrics and its one log line."""
        ATTEMPTS.labels(self._destination, outcome, status_class(fact.http_status)).inc()
        if outcome == "SENT":
            acknowledged = fact.attempted_at.timestamp() + fact.duration_ms / 1000
            COMMIT_TO_ACK.labels(self._destination).observe(max(0.0, acknowledged - event.occurred_at.timestamp()))
        fields = {
            "destination": self._destination,
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
            "attempt destination=%s event_id=%s order_id=%s sequence=%d attempt=%d outcome=%s http_status=%s "
            "workflow_id=%s "
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


class _Slot:
    """A delivery slot, given back once: when the answer comes, or earlier if it is slow in coming."""

    def __init__(self, gate: _DeliveryGate, given_up: Callable[[], None]) -> None:
        self._gate: _DeliveryGate | None = gate
        self._given_up = given_up

    def give_up(self) -> None:
        if self._gate is not None:
            self._gate.release()
            self._gate = None
            self._given_up()


async def _wait_at_most(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), max(0.0, seconds))
    except TimeoutError:
        pass


def _lease_token(run_id: str, destination: str, lane: int) -> uuid.UUID:
    """The lease of one lane of one run at one destination: a later attempt of the lane's activity knows what an
    earlier one held."""
    return uuid.uuid5(LEASE_NAMESPACE, f"{run_id}/{destination}/lane {lane}")


class _Pace:
    """One activity's clock: when its window ends, when it should report, and heartbeats at most every second."""

    def __init__(self, request: RelayBatch, info: activity.Info) -> None:
        self._started = time.monotonic()
        self._deadline = self._started + request.wait_seconds
        self._report_after = request.report_after_seconds
        self._lane = request.lane
        self._report_by: float | None = None
        self._last_heartbeat = 0.0
        self._next_release = 0.0
        timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 0.0
        self._sent_every = timeout * HEARTBEAT_THROTTLE
        self._last_sent = -float("inf")
        self.heartbeats = 0

    def time_to_release_expired_leases(self) -> bool:
        """At the activity's start, then every few seconds: claims of vanished relays come back soon."""
        now = time.monotonic()
        if now < self._next_release:
            return False
        self._next_release = now + RELEASE_EXPIRED_EVERY_SECONDS
        return True

    def delivered(self) -> None:
        """Report at the first time of this lane's phase at least half a period from now (odd and even
        lanes half a period apart: one of them always claims while the other reports)."""
        if self._report_by is None:
            period, now = self._report_after, time.time()
            phase = (self._lane - 1) % 2 * period / 2
            earliest = now + period / 2
            at = earliest + (phase - earliest) % period
            self._report_by = time.monotonic() + (at - now)

    def window_over(self) -> bool:
        return time.monotonic() >= self._deadline

    def time_to_report(self) -> bool:
        now = time.monotonic()
        return now >= self._deadline or (self._report_by is not None and now >= self._report_by)

    def seconds_since_start(self) -> float:
        return time.monotonic() - self._started

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            activity.heartbeat()
            if now - self._last_sent >= self._sent_every:  # what the SDK sends; the others it coalesces
                self._last_sent = now
                self.heartbeats += 1

    async def wait_for(self, arrived: asyncio.Event, seconds: float) -> None:
        """Wait until `arrived` is set, at most `seconds` (less if the window ends or the worker shuts down)."""
        seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        waits = [asyncio.ensure_future(arrived.wait()), asyncio.ensure_future(activity.wait_for_worker_shutdown())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


class _ReportBuilder:
    """Collects what one activity's attempts at one destination did into the report the run shows."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.paused = False
        self.backlog = False
        self.breaker = "CLOSED"
        self.breaker_detail = ""
        self.breaker_open_seconds = 0.0
        self.backlog_events = -1
        self.oldest_waiting_seconds = -1.0
        self.heartbeats = 0
        self._outcomes: dict[str, int] = {}
        self._problems: list[EventProblem] = []

    def add(
        self,
        event_id: str,
        order_id: str,
        description: str,
        outcome: str,
        error: str | None,
        http_status: int | None = None,
        *,
        counted: bool = True,
    ) -> None:
        if counted:
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        if outcome != "SENT" and len(self._problems) < PROBLEMS_REPORTED_MOST:
            what = f"{description}: {error or outcome}"[:300]
            self._problems.append(EventProblem(event_id, order_id, outcome, http_status, what, self.destination))

    def build(self) -> RelayBatchReport:
        return RelayBatchReport(
            destination=self.destination,
            outcomes=self._outcomes,
            problems=self._problems,
            breaker=self.breaker,
            breaker_detail=self.breaker_detail,
            breaker_open_seconds=round(self.breaker_open_seconds, 3),
            paused=self.paused,
            backlog=self.backlog,
            backlog_events=self.backlog_events,
            oldest_waiting_seconds=round(self.oldest_waiting_seconds, 3),
            heartbeats=self.heartbeats,
        )


class RelayActivities:
    """The relay's activity, bound to the worker's engine, settings and schedule watch, and one client per destination:
    each destination is relayed by its own DestinationRelay."""

    def __init__(
        self,
        engine: AsyncEngine,
        platforms: Sequence[PlatformClient],
        settings: Settings,
        pause_watch: SchedulePauseWatch,
        *,
        poll_interval_seconds: float = 0.05,
    ) -> None:
        self._relays = {
            platform.endpoint.name: DestinationRelay(
                engine, platform, settings, pause_watch, poll_interval_seconds=poll_interval_seconds
            )
            for platform in platforms
        }

    @activity.defn
    async def relay_due_events(self, request: RelayBatch) -> RelayBatchReport:
        """Keep `request.destination`'s due events in flight, record each answer as it comes; what happened."""
        relay = self._relays.get(request.destination)
        if relay is None:  # taken out of the configuration after the run started: its lane ends, the run goes on
            log.warning(
                "this worker delivers to %s, not to %s: its lane ends (every worker must have the same "
                "DESTINATIONS_FILE)",
                ", ".join(self._relays),
                request.destination,
            )
            return RelayBatchReport(
                destination=request.destination, worker_destinations=list(self._relays), delivered_here=False
            )
        report = await relay.relay(request)
        report.worker_destinations = list(self._relays)
        return report
