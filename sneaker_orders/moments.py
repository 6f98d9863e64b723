"""Reading a moment as operators write it: an ISO 8601 time, or an age such as `2h` counted back from a given now.

Plain code with no clock of its own: the caller says what "now" is (the CLI the wall clock, a
workflow its own deterministic time), so the workflows may use it inside Temporal's sandbox.
"""

import re
from datetime import UTC, datetime, timedelta

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` (a decimal count of one unit); ValueError for anything else."""
    matched = _DURATION.match(text.strip())
    if not matched:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 45s")
    return timedelta(seconds=float(matched.group(1)) * DURATION_UNITS[matched.group(2)])


def parse_moment(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it has no offset), or an age such as `2h` meaning that long before `now`.

    ValueError when `text` is neither.
    """
    text = text.strip()
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor an age such as 2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
