"""The delivery rules of the contract: what each answer means, backoff with full jitter, Retry-After."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activities.delivery_rules import DeliveryPolicy, retry_after_seconds, verdict_of

POLICY = DeliveryPolicy(max_attempts=10, backoff_base_seconds=1, backoff_max_seconds=300)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "SENT"),
        (201, "SENT"),
        (204, "SENT"),
        (409, "SENT"),
        (408, "RETRY"),
        (425, "RETRY"),
        (429, "RETRY"),
        (500, "RETRY"),
        (502, "RETRY"),
        (503, "RETRY"),
        (504, "RETRY"),
        (None, "RETRY"),
        (400, "FAILED"),
        (401, "FAILED"),
        (403, "FAILED"),
        (404, "FAILED"),
        (410, "FAILED"),
        (422, "FAILED"),
    ],
)
def test_each_answer_has_the_verdict_of_the_contract(status, verdict):
    assert verdict_of(status) == verdict


@given(attempt=st.integers(min_value=1, max_value=60), seed=st.integers())
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempt, seed):
    wait = POLICY.backoff_seconds(attempt, random.Random(seed))

    assert 0 <= wait <= min(300, 2 ** (attempt - 1))


def test_backoff_spreads_retries_over_the_whole_range():
    rng = random.Random(7)
    waits = [POLICY.backoff_seconds(4, rng) for _ in range(2000)]  # ceiling 8 s

    assert min(waits) < 0.5 and max(waits) > 7.5
    assert 3.5 < sum(waits) / len(waits) < 4.5


def test_a_retryable_answer_is_retried_until_the_last_attempt():
    assert POLICY.next_step(503, attempt=9, retry_after=None).verdict == "RETRY"
    last = POLICY.next_step(503, attempt=10, retry_after=None)
    assert (last.verdict, last.gave_up) == ("FAILED", True)


def test_a_refusal_fails_at_once_and_a_success_is_sent():
    assert POLICY.next_step(400, attempt=1, retry_after=None) == POLICY.next_step(400, attempt=1, retry_after=None)
    refused = POLICY.next_step(400, attempt=1, retry_after=None)
    assert (refused.verdict, refused.gave_up) == ("FAILED", False)
    assert POLICY.next_step(409, attempt=3, retry_after=None).verdict == "SENT"


@given(retry_after=st.floats(min_value=0, max_value=1e15), seed=st.integers())
def test_retry_after_is_honoured_up_to_the_longest_backoff(retry_after, seed):
    step = POLICY.next_step(429, attempt=1, retry_after=retry_after, rng=random.Random(seed))

    assert step.verdict == "RETRY"
    assert min(retry_after, 300) <= step.wait_seconds <= 300


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


@pytest.mark.parametrize("header", ["\xb2", "١٢", "1e9", "-5", "Fri, 31 Dec 99999 23:59:59 GMT", "Mon, 99 Foo", ""])
def test_an_unreadable_retry_after_is_ignored(header):
    assert retry_after_seconds(header, datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) is None


def test_a_huge_retry_after_is_capped_at_the_longest_backoff():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    for header in ("99999999999999", "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT"):
        step = POLICY.next_step(503, attempt=1, retry_after=retry_after_seconds(header, now))
        assert step.wait_seconds == 300


def test_a_retry_after_is_a_floor_for_a_retry_and_for_a_held_attempt_capped_by_the_longest_backoff():
    retried = POLICY.next_step(503, attempt=1, retry_after=3.0, rng=random.Random(1))
    held = POLICY.judge(503, 1, 3.0, held=True, refusal_confirmed=False)
    capped = POLICY.judge(429, 1, 10_000.0, held=True, refusal_confirmed=False)

    assert (retried.verdict, retried.floor_seconds) == ("RETRY", 3.0) and retried.wait_seconds >= 3.0
    assert (held.verdict, held.wait_seconds, held.floor_seconds) == ("HELD", 3.0, 3.0)
    assert capped.floor_seconds == 300


def test_a_refusal_is_held_until_the_platform_is_seen_accepting_others_then_failed():
    unsure = POLICY.judge(404, 1, None, held=False, refusal_confirmed=False, rng=random.Random(1))
    confirmed = POLICY.judge(404, 1, None, held=False, refusal_confirmed=True)
    while_open = POLICY.judge(401, 1, None, held=True, refusal_confirmed=True)

    assert unsure.verdict == "HELD" and 0 <= unsure.wait_seconds <= 1 and "refused" in unsure.held_because
    assert (confirmed.verdict, confirmed.gave_up) == ("FAILED", False)
    assert while_open.verdict == "HELD"  # the platform refuses everyone: its trouble, not the event's


def test_an_accepted_answer_is_sent_whatever_the_breaker_says():
    assert POLICY.judge(201, 3, None, held=True, refusal_confirmed=False).verdict == "SENT"
    assert POLICY.judge(409, 3, None, held=False, refusal_confirmed=False).verdict == "SENT"
