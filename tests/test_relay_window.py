"""When a relay run stops starting batches: before the schedule's next tick, but never at once."""

from datetime import UTC, datetime, timedelta

from workflows.relay import _stop_by

INTERVAL = timedelta(seconds=5)


def at(seconds: float) -> datetime:
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def test_a_run_started_by_its_tick_stops_just_before_the_next_tick():
    assert _stop_by(at(0.05), INTERVAL) == at(4.9)


def test_a_run_that_started_late_still_ends_before_the_next_tick():
    assert _stop_by(at(2.0), INTERVAL) == at(4.9)


def test_a_run_triggered_just_before_a_tick_still_relays_for_a_while():
    assert _stop_by(at(4.95), INTERVAL) == at(5.95)
