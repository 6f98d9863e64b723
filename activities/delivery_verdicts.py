"""From a group of answers to the attempts to record: the breaker notes them, then each event gets its verdict.

The breaker (shared by every worker) counts the answers in its window and may open or close; then
each attempt is judged: HELD while it is open, HELD for a refusal (4xx) that no other event is yet
seen to escape, else SENT, RETRY or FAILED by the delivery policy, a Retry-After always a floor.
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.accepted_tally import AcceptedTally
from activities.delivery_rules import DeliveryPolicy, verdict_of
from activities.platform import AttemptFacts
from db.outbox.breaker import BreakerChange, BreakerRule, PlatformAnswer, note_answers
from db.outbox.claims import LeasedEvent
from db.outbox.outcomes import AttemptOutcome, confirmed_refusals
from sneaker_orders.settings import Settings


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The attempts and backoff of RELAY_MAX_ATTEMPTS, RELAY_BACKOFF_BASE_SECONDS, RELAY_BACKOFF_MAX_SECONDS."""
    return DeliveryPolicy(
        settings.relay_max_attempts, settings.relay_backoff_base_seconds, settings.relay_backoff_max_seconds
    )


def breaker_rule(settings: Settings) -> BreakerRule:
    """The breaker of the RELAY_BREAKER_* settings; a probe waits at most RELAY_BACKOFF_MAX_SECONDS for Retry-After."""
    return BreakerRule(
        failures_to_open=settings.relay_breaker_failures,
        probe_every_seconds=settings.relay_breaker_probe_seconds,
        window_seconds=settings.relay_breaker_window_seconds,
        failure_ratio=settings.relay_breaker_failure_ratio,
        retry_after_cap_seconds=settings.relay_backoff_max_seconds,
        drain_batch=settings.relay_breaker_drain_batch,
    )


async def judge_answers(
    engine: AsyncEngine,
    destination: str,
    rule: BreakerRule,
    policy: DeliveryPolicy,
    facts: list[tuple[LeasedEvent, AttemptFacts]],
    probe_token: uuid.UUID | None = None,
    tally: AcceptedTally | None = None,
) -> tuple[BreakerChange, list[AttemptOutcome]]:
    """Note `facts` on the destination's breaker, then judge each: the breaker after them, and the attempts to record
    (in the order of `facts`). `probe_token`: the facts include the probe's. `tally` (given while the breaker is
    seen closed): an all-accepted group is counted there, written with others later; any other group flushes it
    first."""
    answers = [
        PlatformAnswer(verdict_of(fact.http_status) != "SENT", fact.attempted_at, fact.retry_after_seconds, fact.error)
        for _, fact in facts
    ]
    if tally is not None and probe_token is None and answers and not any(answer.failed for answer in answers):
        return tally.add([answer.sent_at for answer in answers]), [
            judge_attempt(policy, event, fact, held=False, refusal_confirmed=False) for event, fact in facts
        ]
    if tally is not None:
        await tally.flush()
    change = await note_answers(engine, destination, rule, answers, probe_token=probe_token)
    refused = [(fact.event_id, fact.attempted_at) for _, fact in facts if verdict_of(fact.http_status) == "FAILED"]
    confirmed = (
        set() if change.is_open else await confirmed_refusals(engine, destination, refused, change.accepted_sent_at)
    )
    return change, [
        judge_attempt(policy, event, fact, held=change.is_open, refusal_confirmed=fact.event_id in confirmed)
        for event, fact in facts
    ]


def judge_attempt(
    policy: DeliveryPolicy, event: LeasedEvent, fact: AttemptFacts, *, held: bool, refusal_confirmed: bool
) -> AttemptOutcome:
    """One attempt as it will be recorded."""
    step = policy.judge(
        fact.http_status, event.attempt, fact.retry_after_seconds, held=held, refusal_confirmed=refusal_confirmed
    )
    error = fact.error
    if step.gave_up:
        error = f"gave up after {event.attempt} attempts; last: {fact.error}"
    elif step.held_because:
        error = f"held, not counted ({step.held_because}): {fact.error}"
    return AttemptOutcome(
        fact.event_id,
        fact.attempted_at,
        fact.duration_ms,
        step.verdict,
        fact.http_status,
        error,
        step.wait_seconds,
        step.floor_seconds,
    )
