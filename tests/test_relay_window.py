"""When a relay run stops starting activities: just before a schedule tick about RELAY_RUN_SECONDS away."""

from datetime import UTC, datetime, timedelta

from workflows.relay import run_deadline

INTERVAL = timedelta(seconds=5)
MINUTE = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def test_a_run_as_long_as_the_interval_stops_just_before_the_next_tick():
    assert run_deadline(at(0.05), INTERVAL, INTERVAL) == at(4.9)


def test_a_run_that_started_late_still_ends_before_the_next_tick():
    assert run_deadline(at(2.0), INTERVAL, INTERVAL) == at(4.9)


def test_a_run_triggered_just_before_a_tick_still_relays_for_a_while():
    assert run_deadline(at(4.95), INTERVAL, INTERVAL) == at(5.95)


def test_a_minute_long_run_ends_just_before_the_tick_a_minute_later():
    assert run_deadline(at(0.05), INTERVAL, MINUTE) == at(59.9)


def test_a_minute_long_run_that_started_late_ends_before_the_last_tick_of_its_minute():
    assert run_deadline(at(3.0), INTERVAL, MINUTE) == at(59.9)


def test_an_interval_longer_than_the_run_keeps_the_run_until_the_next_tick():
    assert run_deadline(at(0.05), timedelta(hours=1), MINUTE) == at(3599.9)
