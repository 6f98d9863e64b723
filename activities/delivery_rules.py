"""What an attempt's answer means (sent, retry later, give up) and how long to wait before the next one."""

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["SENT", "RETRY", "FAILED"]

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
class RetryPolicy:
    """How many attempts an event gets, and the exponential backoff with full jitter between them."""

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
        if retry_after is not None:  # honoured, but never beyond the longest backoff
            wait = min(max(wait, retry_after), self.backoff_max_seconds)
        return NextStep("RETRY", wait)


@dataclass(frozen=True)
class NextStep:
    """The verdict on an attempt; for RETRY, the wait before the next one."""

    verdict: Verdict
    wait_seconds: float = 0.0
    gave_up: bool = False  # FAILED because the attempts ran out, not because the platform refused
