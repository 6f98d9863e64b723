"""The one reading of a moment (sneaker_orders/moments.py), shared by the events CLI and the re-run workflows."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sneaker_orders.moments import parse_duration, parse_moment

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2h", NOW - timedelta(hours=2)), (" 90m ", NOW - timedelta(minutes=90)), ("1.5d", NOW - timedelta(hours=36))],
)
def test_an_age_counts_back_from_the_now_given(text, expected):
    assert parse_moment(text, NOW) == expected


def test_an_iso_time_is_utc_without_an_offset_and_keeps_its_own():
    assert parse_moment("2026-11-30T08:15:00", NOW) == datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    with_offset = parse_moment("2026-11-30T08:15:00+02:00", NOW)
    assert with_offset.utcoffset() == timedelta(hours=2)
    assert with_offset == datetime(2026, 11, 30, 8, 15, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize("text", ["yesterday", "2 h", "2w", "-2h", ""])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_moment(text, NOW)


def test_a_duration_is_a_count_of_one_unit():
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("45s") == timedelta(seconds=45)
    with pytest.raises(ValueError):
        parse_duration("30 days")
