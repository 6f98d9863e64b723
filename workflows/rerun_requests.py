"""What an operator asks of a re-run started from the `temporal` CLI, checked before any work is done.

`temporal workflow start --type ReplayOrderEvents --input '{"order_id": "42"}'`: the input is a JSON
object of `order_id`, `event_id`, `since`/`until` and `destination` (RedriveEvents also takes
`"all_failed": true`). An unknown field or a malformed value is refused whole (a misspelt `until` must
not widen a replay), as the workflow's failure, not retried. Plain code with no I/O: the workflows call it
with their own clock; whether the destination is configured is the activities' to check (they read
`destinations`), and a run for one that is not fails the same way, before any event is touched.
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sneaker_orders.moments import parse_moment

# Without `destination`, the destination of EXTERNAL_PLATFORM_URL (the one destination before there were several).
DEFAULT_DESTINATION = "platform"
# What a destination's name may look like; whether one of that name is configured, the activities check.
_DESTINATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

SELECTION_FIELDS = ("order_id", "event_id", "since", "until", "destination")
_DIGITS = re.compile(r"^[0-9]{1,18}$")


class InvalidRerunRequest(ValueError):
    """The input of a re-run names no events, or names them in a way that cannot be read."""


@dataclass(frozen=True)
class RerunSelection:
    """The events a re-run acts on: one event, one order's, and/or those that occurred in [since, until)."""

    order_id: int | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    destination: str = DEFAULT_DESTINATION
    all_failed: bool = False

    def as_input(self) -> dict[str, Any]:
        """The same selection as a workflow input, its times absolute (what a continued run is given)."""
        given = {
            "order_id": self.order_id,
            "event_id": self.event_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "all_failed": self.all_failed or None,
        }
        return {"destination": self.destination, **{key: value for key, value in given.items() if value is not None}}

    def describe(self) -> str:
        """The selection in words, e.g. `order 42's events` or `events that occurred since 2026-...`."""
        parts = []
        if self.event_id is not None:
            parts.append(f"event {self.event_id}")
        if self.order_id is not None:
            parts.append(f"order {self.order_id}'s events")
        if self.since is not None:
            until = f" until {self.until.isoformat()}" if self.until else ""
            parts.append(f"events that occurred since {self.since.isoformat()}{until}")
        chosen = " among ".join(parts) or "every event"
        return f"{chosen} for destination {self.destination}"


def parse_rerun_request(given: Mapping[str, Any], now: datetime, *, all_failed_allowed: bool) -> RerunSelection:
    """The selection `given` asks for (ages such as `2h` count back from `now`); raises InvalidRerunRequest."""
    if not isinstance(given, Mapping):
        raise InvalidRerunRequest(f'the input is a JSON object such as {{"order_id": "42"}}, not {given!r}')
    known = SELECTION_FIELDS + (("all_failed",) if all_failed_allowed else ())
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRerunRequest(f"unknown field(s) {', '.join(unknown)}; the input takes {', '.join(known)}")
    destination = given.get("destination", DEFAULT_DESTINATION)
    if not isinstance(destination, str) or not _DESTINATION_NAME.match(destination):
        raise InvalidRerunRequest(f"destination is a destination's name, such as 'platform', not {destination!r}")
    all_failed = given.get("all_failed", False)
    if not isinstance(all_failed, bool):
        raise InvalidRerunRequest(f"all_failed is true or false, not {all_failed!r}")
    selection = RerunSelection(
        order_id=_order_id(given.get("order_id")),
        event_id=_event_id(given.get("event_id")),
        since=_moment("since", given.get("since"), now),
        until=_moment("until", given.get("until"), now),
        destination=destination,
        all_failed=all_failed,
    )
    named = selection.order_id is not None or selection.event_id is not None or selection.since is not None
    if selection.until is not None and selection.since is None:
        raise InvalidRerunRequest("until needs since")
    if named == all_failed:
        everything = ', or "all_failed": true' if all_failed_allowed else ""
        raise InvalidRerunRequest(
            f"name the events: order_id, event_id, or since (and optionally until){everything}"
            + (" (not both)" if named else "")
        )
    return selection


def _order_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and _DIGITS.match(value) and int(value) > 0:
        return int(value)
    raise InvalidRerunRequest(f"order_id is an order's id (decimal digits), not {value!r}")


def _event_id(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidRerunRequest(f"event_id is an event's whole id (a UUID), not {value!r}") from None


def _moment(name: str, value: Any, now: datetime) -> datetime | None:
    """An ISO 8601 time (UTC when it has no offset), or an age such as `2h` meaning that long before `now`."""
    if value is None:
        return None
    try:
        return parse_moment(str(value), now)
    except ValueError:
        raise InvalidRerunRequest(f"{name} is an ISO 8601 time or an age such as 2h, not {value!r}") from None
