"""What an attempt's answer means (sent, retry later, held, give up) and how long to wait before the next one."""

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["SENT", "RETRY", "FAILED"]
Judged = Literal["SENT", "RETRY", "FAILED", "HELD"]

# Answers that say "not now": worth another attempt after a pause.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Retry-After in delta-seconds: ASCII digits only (str.isdigit() also accepts "²" and friends).
_DELTA_SECONDS = re.compile(r"[0-9]+")


def verdict_of(http_status: int | None) -> Verdict:
    """The verdict of one answer; None means no answer at all (connection error, timeout)."""
    if http_status is None:
        return "RETRY"
    if 200 <= http_status < 300 or http_status == 409:  # 409: the platform already has it
        return "SENT"
    if http_status in RETRYABLE_STATUSES or http_status >= 500:
        return "RETRY"
    if 400 <= http_status < 500:
        return "FAILED"  # the platform refuses this event; retrying would not change its mind
    return "RETRY"  # 1xx/3xx are not answers to a POST we expect; treat them as transient


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """The wait a Retry-After header asks for (delta-seconds or HTTP-date), or None if absent or unreadable.

    Whatever the platform sends, this returns a finite number of seconds or None; callers cap it.
    """
    if not header:
        return None
    header = header.strip()
    if _DELTA_SECONDS.fullmatch(header):
        return float(header)
    try:
        when = parsedate_to_datetime(header)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


@dataclass(frozen=True)
class DeliveryPolicy:
    """How many attempts an event gets, and the exponential backoff with full jitter between them.

    (Not Temporal's `RetryPolicy`, which retries the relay's activities, not the events.)
    """

    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float

    def backoff_seconds(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """A random wait in [0, min(max, base * 2^(failed_attempts - 1))]: full jitter spreads retries out."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, failed_attempts - 1))
        return (rng or random).uniform(0, ceiling)

    def next_step(
        self, http_status: int | None, attempt: int, retry_after: float | None, rng: random.Random | None = None
    ) -> "NextStep":
        """What follows attempt number `attempt`, which got `http_status` (None: no answer)."""
        verdict = verdict_of(http_status)
        if verdict != "RETRY":
            return NextStep(verdict)
        if attempt >= self.max_attempts:
            return NextStep("FAILED", gave_up=True)
        wait = self.backoff_seconds(attempt, rng)
        floor = self.floor_of(retry_after)
        return NextStep("RETRY", max(wait, floor or 0.0), floor)

    def floor_of(self, retry_after: float | None) -> float | None:
        """The wait a Retry-After imposes: honoured, but never beyond the longest backoff."""
        return None if retry_after is None else min(retry_after, self.backoff_max_seconds)

    def judge(
        self,
        http_status: int | None,
        attempt: int,
        retry_after: float | None,
        *,
        held: bool,
        refusal_confirmed: bool,
        rng: random.Random | None = None,
    ) -> "NextStep":
        """What follows attempt number `attempt` given what the breaker knows: HELD (the budget kept) while the
        platform fails for every event (`held`), and for a refusal (4xx) not yet seen to be the event's own
        (`refusal_confirmed`: the platform accepted another event sent after it was refused)."""
        verdict = verdict_of(http_status)
        floor = self.floor_of(retry_after)
        if verdict == "SENT":
            return NextStep("SENT")
        if held:
            return NextStep("HELD", floor or 0.0, floor, held_because="the platform fails for every event")
        if verdict == "FAILED" and not refusal_confirmed:
            wait = max(self.backoff_seconds(1, rng), floor or 0.0)
            return NextStep("HELD", wait, floor, held_because="refused, but so far no other event was accepted")
        return self.next_step(http_status, attempt, retry_after, rng)


@dataclass(frozen=True)
class NextStep:
    """The verdict on an attempt; for RETRY, the wait before the next one."""

    verdict: Judged
    wait_seconds: float = 0.0
    # The Retry-After the platform asked for (capped): nothing, not even the breaker's close, makes it due sooner.
    floor_seconds: float | None = None
    gave_up: bool = False  # FAILED because the attempts ran out, not because the platform refused
    held_because: str | None = None  # HELD: why the attempt does not count
