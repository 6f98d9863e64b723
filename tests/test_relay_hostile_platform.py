"""A platform that answers badly harms only the event it answers: however a request ends, it is that event's attempt."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psutil
import psycopg
import pytest

from devstack.local_postgres import libpq_url
from tests.support.hostile_platform import MISBEHAVIOURS
from tests.support.outbox_views import attempts_of, event_rows, insert_pending_events
from tests.support.polling import wait_until

HEALTHY_EVENTS = 20
RSS_LIMIT_BYTES = 200 * 1024 * 1024
# What each misbehaviour's attempt says, in words an operator can read.
READABLE_ERRORS = {
    "bad-status-line": "malformed answer",
    "oversized-header": "malformed answer",
    "unreadable-retry-after": "HTTP 503: busy",
    "huge-retry-after": "HTTP 503: busy",
    "drip": "no complete answer within 2s",
    "endless-body": "HTTP 500: xxxxxxxx",
    "gigabyte-body": "HTTP 500: xxxxxxxx",
    "gzip-bomb": "HTTP 503: (gzip-encoded body, not read)",
    "hang-up": "connection error: the platform closed the connection without an answer",
}


class PeakMemory:
    """The largest resident set size of a process, sampled every 50 ms while inside."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)


def test_each_hostile_answer_harms_only_its_own_event_and_the_worker_stays_small(
    database_url, db, catalog, relay, hostile
):
    platform, url = hostile
    relay.config.extra.update(
        {
            "EXTERNAL_PLATFORM_URL": url,
            "RELAY_HTTP_TIMEOUT_SECONDS": "2",
            "RELAY_BACKOFF_BASE_SECONDS": "1",
            "RELAY_BACKOFF_MAX_SECONDS": "5",
        }
    )
    # A platform that serves the shop: healthy events before the hostile ones (were the first five answers of
    # a fresh worker all failures, the breaker would rightly take the platform for down, and probe).
    healthy = insert_pending_events(db, [f"healthy-{number}" for number in range(HEALTHY_EVENTS)])
    misbehaving = dict(zip(MISBEHAVIOURS, insert_pending_events(db, list(MISBEHAVIOURS)), strict=True))
    worker = relay.start_worker()

    # Live orders go on meanwhile, as in a shop: the slow hostile answers (a drip ends at the 2 s deadline)
    # are never all the platform says, so the breaker judges them each event's own, not an outage.
    with PeakMemory(worker.process.pid) as memory, live_events(database_url) as live:
        first_attempts = wait_until(
            lambda: _first_attempts(db, [*misbehaving.values(), *healthy]),
            timeout=60,
            what="every event's first attempt to be recorded",
        )
    first_attempts |= wait_until(lambda: _first_attempts(db, live), what="the live events' first attempts")
    healthy += live

    assert memory.peak < RSS_LIMIT_BYTES, f"worker RSS peaked at {memory.peak / 2**20:.0f} MiB"
    for event_id in healthy:
        assert (first_attempts[event_id]["outcome"], first_attempts[event_id]["http_status"]) == ("SENT", 201)
        assert platform.requests[event_id] == 1
    assert {row["status"] for row in event_rows(db) if str(row["event_id"]) in healthy} == {"SENT"}
    for misbehaviour, event_id in misbehaving.items():
        attempt = first_attempts[event_id]
        assert attempt["outcome"] == "RETRY", (misbehaviour, attempt)
        assert READABLE_ERRORS[misbehaviour] in attempt["error"], (misbehaviour, attempt["error"])
        assert attempt["error"].isprintable() and len(attempt["error"]) <= 200
        assert attempt["workflow_id"] and attempt["run_id"]


def test_retry_after_is_capped_when_huge_and_ignored_when_unreadable(db, catalog, relay, hostile):
    _, url = hostile
    relay.config.extra.update(
        {"EXTERNAL_PLATFORM_URL": url, "RELAY_BACKOFF_BASE_SECONDS": "1", "RELAY_BACKOFF_MAX_SECONDS": "5"}
    )
    huge, unreadable = insert_pending_events(db, ["huge-retry-after", "unreadable-retry-after"])
    insert_pending_events(db, [f"healthy-{number}" for number in range(5)])
    relay.start_worker()

    attempts = wait_until(lambda: _first_attempts(db, [huge, unreadable]), what="both first attempts")

    rows = {str(row["event_id"]): row for row in event_rows(db)}
    assert rows[huge]["next_attempt_at"] - attempts[huge]["attempted_at"] == pytest.approx(
        timedelta(seconds=5), abs=timedelta(seconds=0.5)
    )
    assert rows[unreadable]["next_attempt_at"] - attempts[unreadable]["attempted_at"] < timedelta(seconds=1.5)


@contextmanager
def live_events(database_url: str, every_seconds: float = 0.05) -> Iterator[list[str]]:
    """Write a healthy PENDING event every `every_seconds` while inside; the ids written."""
    written: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
            while not stop.wait(every_seconds):
                written.extend(insert_pending_events(connection, [f"live-{len(written)}"]))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield written
    finally:
        stop.set()
        writer.join()


def _first_attempts(db, event_ids: list[str]) -> dict[str, dict] | None:
    """Each event's first attempt, once every one of them has one."""
    first = {}
    for event_id in event_ids:
        attempts = attempts_of(db, event_id)
        if not attempts:
            return None
        first[event_id] = attempts[0]
    return first
