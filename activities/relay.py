"""The relay's activities: claim due events under a lease; deliver them and record each outcome."""

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.delivery_rules import RetryPolicy
from activities.payloads import ClaimedBatch, ClaimRequest, DeliveryReport
from activities.platform import AttemptFacts, PlatformClient
from db.outbox.claims import (
    Claim,
    LeasedEvent,
    claim_due_events,
    give_back_claims,
    release_expired_leases,
    still_leased_events,
)
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
        """Claim due events (after giving back expired leases, if asked); while none are due, keep looking."""
        if request.release_expired_leases:
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
                return ClaimedBatch(
                    lease_token,
                    {e.event_id: f"{e.event_type} #{e.sequence} of order {e.aggregate_id}" for e in events},
                )
            activity.heartbeat()
            await _pause_unless_shutting_down(min(self._poll_interval, deadline - time.monotonic()))

    @activity.defn
    async def deliver_claimed_events(self, batch: ClaimedBatch) -> DeliveryReport:
        """Send every event still leased to the batch, then record each attempt and its outcome."""
        leased = await still_leased_events(self._engine, batch.lease_token)
        facts: list[tuple[LeasedEvent, AttemptFacts]] = []
        try:
            await asyncio.gather(*(self._send(event, facts) for event in leased))
        except asyncio.CancelledError:
            # The worker is going away: keep what was learnt, hand the rest back to another relay.
            await asyncio.shield(self._record(batch.lease_token, facts))
            await asyncio.shield(give_back_claims(self._engine, batch.lease_token))
            raise
        return await self._record(batch.lease_token, facts)

    async def _send(self, event: LeasedEvent, facts: list[tuple[LeasedEvent, AttemptFacts]]) -> None:
        async with self._delivery_gate:
            facts.append((event, await self._platform.send(event)))
        activity.heartbeat(len(facts))

    async def _record(self, lease_token: str, facts: list[tuple[LeasedEvent, AttemptFacts]]) -> DeliveryReport:
        attempts = [self._judge(event, fact) for event, fact in facts]
        info = activity.info()
        logged = await record_attempts(self._engine, lease_token, attempts, Run(info.workflow_id, info.workflow_run_id))
        report = DeliveryReport()
        for (event, _), attempt in zip(facts, attempts, strict=True):
            outcome = logged[attempt.event_id]
            report.outcomes[event.event_id] = " ".join(
                part for part in (outcome, str(attempt.http_status or ""), attempt.error or "") if part
            )[:160]
            if outcome != "SENT":
                log.info(
                    "event %s (%s #%d of order %s, attempt %d): %s %s",
                    event.event_id,
                    event.event_type,
                    event.sequence,
                    event.aggregate_id,
                    event.attempt,
                    outcome,
                    attempt.error or "",
                )
        return report

    def _judge(self, event: LeasedEvent, fact: AttemptFacts) -> AttemptOutcome:
        step = self._retry_policy.next_step(fact.http_status, event.attempt, fact.retry_after_seconds)
        error = f"gave up after {event.attempt} attempts; last: {fact.error}" if step.gave_up else fact.error
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
