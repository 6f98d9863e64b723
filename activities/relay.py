"""The relay's activities: claim due events under a lease; deliver them and record each outcome."""

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.delivery_rules import RetryPolicy
from activities.payloads import ClaimedBatch, ClaimedEventRef, ClaimRequest, DeliveryReport, EventOutcome
from activities.platform import AttemptFacts, PlatformClient
from db.outbox.claims import Claim, LeasedEvent, claim_due_events, give_back_claims, release_expired_leases, still_leased_events
from db.outbox.outcomes import AttemptOutcome, Run, record_attempts

log = logging.getLogger(__name__)


class RelayActivities:
    """Activities bound to the worker's engine, platform client and relay settings."""

    def __init__(
        self,
        engine: AsyncEngine,
        platform: PlatformClient,
        retry_policy: RetryPolicy,
        *,
        lease_seconds: float,
        delivery_concurrency: int,
        poll_interval_seconds: float = 0.05,
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._retry_policy = retry_policy
        self._lease_seconds = lease_seconds
        self._delivery_gate = asyncio.Semaphore(delivery_concurrency)
        self._poll_interval = poll_interval_seconds

    @activity.defn
    async def claim_due_events(self, request: ClaimRequest) -> ClaimedBatch:
        """Give back expired leases, then claim due events; while none are due, keep looking until the wait ends."""
        released = await release_expired_leases(self._engine, self._retry_policy.max_attempts)
        if released:
            log.warning("gave back %d expired leases: %s", len(released), ", ".join(released[:10]))
        info = activity.info()
        claim = Claim(request.batch_size, self._lease_seconds, info.workflow_id, info.workflow_run_id)
        deadline = time.monotonic() + request.wait_seconds
        while True:
            lease_token, events = await claim_due_events(self._engine, claim)
            if events and activity.is_worker_shutdown():
                # Nobody here will deliver them: hand them straight back.
                await give_back_claims(self._engine, lease_token)
                events = []
            if events or time.monotonic() >= deadline or activity.is_worker_shutdown():
                refs = [ClaimedEventRef(e.event_id, e.aggregate_id, e.sequence, e.event_type, e.retry_count + 1) for e in events]
                return ClaimedBatch(lease_token, refs)
            activity.heartbeat()
            await _pause_unless_shutting_down(min(self._poll_interval, deadline - time.monotonic()))

    @activity.defn
    async def deliver_claimed_events(self, batch: ClaimedBatch) -> DeliveryReport:
        """Send every event still leased to the batch, then record each attempt and its outcome."""
        claimed = {event.event_id: event for event in batch.events}
        leased = [event for event in await still_leased_events(self._engine, batch.lease_token) if event.event_id in claimed]
        facts: list[AttemptFacts] = []
        try:
            await asyncio.gather(*(self._send(event, facts) for event in leased))
        except asyncio.CancelledError:
            # The worker is going away: keep what was learnt, hand the rest back to another relay.
            await asyncio.shield(self._record(batch.lease_token, claimed, facts))
            await asyncio.shield(give_back_claims(self._engine, batch.lease_token))
            raise
        return await self._record(batch.lease_token, claimed, facts)

    async def _send(self, event: LeasedEvent, facts: list[AttemptFacts]) -> None:
        async with self._delivery_gate:
            facts.append(await self._platform.send(event))
        activity.heartbeat(len(facts))

    async def _record(
        self, lease_token: str, claimed: dict[str, ClaimedEventRef], facts: list[AttemptFacts]
    ) -> DeliveryReport:
        attempts = [self._judge(fact, claimed[fact.event_id].attempt) for fact in facts]
        info = activity.info()
        logged = await record_attempts(self._engine, lease_token, attempts, Run(info.workflow_id, info.workflow_run_id))
        outcomes = []
        for attempt in attempts:
            ref = claimed[attempt.event_id]
            outcome = EventOutcome(
                ref.event_id, ref.order_id, ref.sequence, ref.event_type, ref.attempt,
                logged[attempt.event_id], attempt.http_status, attempt.error,
            )
            if outcome.outcome != "SENT":
                log.info(
                    "event %s (order %s #%d, attempt %d): %s %s",
                    ref.event_id, ref.order_id, ref.sequence, ref.attempt, outcome.outcome, attempt.error or "",
                )
            outcomes.append(outcome)
        return DeliveryReport(outcomes)

    def _judge(self, fact: AttemptFacts, attempt: int) -> AttemptOutcome:
        step = self._retry_policy.next_step(fact.http_status, attempt, fact.retry_after_seconds)
        error = f"gave up after {attempt} attempts; last: {fact.error}" if step.gave_up else fact.error
        return AttemptOutcome(
            fact.event_id, fact.attempted_at, fact.duration_ms, step.verdict, fact.http_status, error, step.wait_seconds
        )


async def _pause_unless_shutting_down(seconds: float) -> None:
    """Wait `seconds`, or less if the worker starts shutting down."""
    shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
    try:
        await asyncio.wait([shutdown], timeout=max(0.0, seconds))
    finally:
        shutdown.cancel()
