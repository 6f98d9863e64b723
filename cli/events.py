"""`sneaker-orders events list|show|redrive|retry-now|replay|discard`: the outbox for operators, from the database.

Each command takes `--destination NAME`: only that destination's deliveries; without it, every destination's.
"""

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from db.engine import create_engine
from db.outbox.breaker import all_breakers
from db.outbox.operations import (
    AmbiguousEventId,
    Delivery,
    DeliveryNotFound,
    DestinationNotFound,
    EventDetail,
    EventNotFound,
    EventSummary,
    event_detail,
    list_events,
    resolve_event_id,
)
from db.outbox.operator_actions import (
    ActedOn,
    ReplaySelection,
    discard_failed,
    redrive_failed,
    replay_sent,
    retry_now,
)
from db.statuses import EVENT_STATUSES, NO_DELIVERY
from sneaker_orders.moments import parse_duration, parse_moment
from sneaker_orders.settings import Settings

# An attempt that did not deliver the event (STALE ones came too late to count either way).
FAILED_OUTCOMES = ("RETRY", "FAILED", "LEASE_EXPIRED")


def add_events_commands(commands, handler) -> None:
    """Register `events` and its subcommands, run by `handler(settings, args)`."""
    events = commands.add_parser(
        "events", help="the outbox: list, show one with its attempts, redrive, retry-now, replay, discard"
    )
    events.set_defaults(command=handler)
    actions = events.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="deliveries (one per event and destination), newest first, with age")
    listing.add_argument("--status", choices=EVENT_STATUSES)
    listing.add_argument("--order-id", type=int)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    listing.set_defaults(events_action=_list)

    show = actions.add_parser("show", help="one event with its payload, deliveries, attempts and operator actions")
    show.add_argument("event_id", metavar="EVENT_ID", help="the event id, or enough of its start to name one event")
    show.add_argument("--json", action="store_true")
    show.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    show.set_defaults(events_action=_show)

    redrive = actions.add_parser("redrive", help="put FAILED deliveries back to PENDING, due now, with a fresh budget")
    redrive.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="ids or unambiguous prefixes")
    redrive.add_argument("--all-failed", action="store_true", help="every FAILED event (or of --order-id)")
    redrive.add_argument("--order-id", type=int, help="the FAILED events of this order")
    redrive.add_argument("--dry-run", action="store_true", help="show what would be redriven, change nothing")
    redrive.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    redrive.set_defaults(events_action=_redrive)

    retry = actions.add_parser("retry-now", help="make PENDING deliveries waiting out a backoff due now")
    retry.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="ids or unambiguous prefixes")
    retry.add_argument("--all", action="store_true", help="every PENDING event not yet due")
    retry.add_argument("--dry-run", action="store_true", help="show which events, change nothing")
    retry.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    retry.set_defaults(events_action=_retry_now)

    replay = actions.add_parser(
        "replay",
        help="deliver SENT events (still retained) again, same event ids, in order per order; with --destination,"
        " also the events that destination has no delivery of (added later): from a chosen point",
    )
    replay.add_argument("--order-id", type=int, help="every retained SENT event of this order")
    replay.add_argument(
        "--since", type=_moment, help="events that occurred at or after: ISO 8601 (UTC if no offset) or an age (2h)"
    )
    replay.add_argument("--until", type=_moment, help="... and before this (same forms)")
    replay.add_argument("--dry-run", action="store_true", help="show which events, change nothing")
    replay.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    replay.set_defaults(events_action=_replay)

    discard = actions.add_parser(
        "discard",
        help="delete FAILED deliveries for good (each one recorded with its attempts); an event goes with its last",
    )
    discard.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="ids or unambiguous prefixes")
    discard.add_argument("--all-failed", action="store_true", help="every FAILED event older than --older-than")
    discard.add_argument("--older-than", type=_duration, help="with --all-failed: created longer ago, e.g. 30d")
    discard.add_argument("--dry-run", action="store_true", help="show which events, change nothing")
    discard.add_argument("--destination", metavar="NAME", help="only this destination's deliveries")
    discard.set_defaults(events_action=_discard)


def run_events_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the chosen `events` action against DATABASE_URL (or the embedded database)."""

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1, application_name="sneaker-orders-cli")
        try:
            return await args.events_action(engine, settings, args)
        except (EventNotFound, AmbiguousEventId, DestinationNotFound, DeliveryNotFound) as problem:
            print(problem.detail, file=sys.stderr)
            return 1
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _moment(text: str) -> datetime:
    """An ISO 8601 time (UTC when it has no offset), or an age such as `2h` meaning that long ago."""
    try:
        return parse_moment(text, datetime.now(UTC))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="milliseconds") if moment else "-"


def _age(since: datetime, now: datetime) -> str:
    """A short age: 42s, 17m, 5h, 3d."""
    seconds = max(0.0, (now - since).total_seconds())
    for limit, unit, size in ((90, "s", 1), (90 * 60, "m", 60), (36 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds / 86400:.0f}d"


def _json_default(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _requested_by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _event_ids(engine, given: list[str]) -> list[uuid.UUID]:
    return [await resolve_event_id(engine, text) for text in given]


async def _list(engine, settings: Settings, args: argparse.Namespace) -> int:
    events = await list_events(
        engine, status=args.status, order_id=args.order_id, destination=args.destination, limit=args.limit
    )
    if args.json:
        for event in events:
            print(json.dumps(asdict(event), default=_json_default))
        return 0
    # Lines about the outbox as a whole (the relay's state) go below the table.
    now = datetime.now(UTC)
    width = max([len("DESTINATION"), *(len(event.destination or "") for event in events)])
    print(
        f"{'EVENT_ID':36}  {'TYPE':15} {'ORDER':>8} {'SEQ':>3}  {'DESTINATION':{width}}  {'STATUS':10} {'AGE':>5} "
        f"{'RETRIES':>7}  LAST_ERROR"
    )
    for event in events:
        print(
            f"{event.event_id:36}  {event.event_type:15} {event.aggregate_id:>8} {event.sequence:>3}  "
            f"{event.destination:{width}}  {event.status:10} {_age(event.created_at, now):>5} {event.retry_count:>7}  "
            f"{event.last_error or ''}"
        )
    for breaker in await all_breakers(engine):  # is the relay delivering, or holding for an outage?
        print(breaker.describe())
    return 0


async def _show(engine, settings: Settings, args: argparse.Namespace) -> int:
    detail = await event_detail(engine, await resolve_event_id(engine, args.event_id), destination=args.destination)
    if args.json:
        print(json.dumps(asdict(detail), default=_json_default, indent=2))
        return 0
    for line in _describe(detail, settings, args.destination):
        print(line)
    return 0


def _describe(detail: EventDetail, settings: Settings, destination: str | None) -> list[str]:
    event = detail.event
    attempts = [a for a in detail.attempts if destination is None or a.destination == destination]
    actions = [a for a in detail.actions if destination is None or a.destination == destination]
    failed = sum(attempt.outcome in FAILED_OUTCOMES for attempt in attempts)
    lines = [
        f"event      {event.event_id}  {event.event_type} #{event.sequence}",
        f"of         {event.aggregate_type} {event.aggregate_id}",
        f"status     {_state(event, settings)}" + (f"  (to {destination})" if destination else ""),
        f"created    {_iso(event.created_at)}  ({_age(event.created_at, datetime.now(UTC))} ago)",
        f"attempts   {len(attempts)}, {failed} failed",
    ]
    if event.last_error:
        lines.append(f"last error {event.last_error}")
    lines.append("deliveries" if detail.deliveries else "deliveries none (no destination takes this event's type)")
    width = max([0, *(len(delivery.destination) for delivery in detail.deliveries)])
    for delivery in detail.deliveries:
        lines.append(f"  {delivery.destination:{width}}  {_state(delivery, settings)}")
        if delivery.last_error and delivery.status != "SENT":
            lines.append(f"  {'':{width}}  last error {delivery.last_error}")
    if attempts:
        lines.append("attempts")
    for attempt in attempts:
        lines.append(
            f"  #{attempt.attempt_number} {_iso(attempt.attempted_at)}  {attempt.destination:{width}}  "
            f"{attempt.outcome:13} {attempt.http_status or '-':>3}  {attempt.error or ''}"
        )
        if attempt.workflow_id and attempt.run_id:
            lines.append(f"      {settings.temporal_run_url(attempt.workflow_id, attempt.run_id)}")
    if actions:
        lines.append("operator actions")
    for action in actions:
        was = (
            "had no delivery"
            if action.status_before == NO_DELIVERY
            else f"was {action.status_before}, {action.retry_count_before} failed attempts in its budget"
        )
        lines.append(
            f"  {_iso(action.requested_at)}  {action.action:9} {action.destination:{width}}  by {action.requested_by}"
            f" ({was})"
        )
    lines.append("payload")
    lines += ["  " + line for line in json.dumps(detail.payload, indent=2, sort_keys=True).splitlines()]
    return lines


def _state(delivery: EventSummary | Delivery, settings: Settings) -> str:
    """The status line: what the delivery is waiting for, only where that applies."""
    if delivery.status == "SENT":
        return f"SENT at {_iso(delivery.sent_at)}"
    if delivery.status == "PENDING":
        wait = (delivery.next_attempt_at - datetime.now(UTC)).total_seconds()
        due = f"due in {wait:.1f}s" if wait > 0 else "due now"
        return (
            f"PENDING, next attempt at {_iso(delivery.next_attempt_at)} ({due}); "
            f"{delivery.retry_count} of {settings.relay_max_attempts} attempts used"
        )
    if delivery.status == "PROCESSING":
        return "PROCESSING: a relay is delivering it now"
    return "FAILED: waits for an operator (redrive or discard)"


async def _act(
    engine,
    verb: str,
    acted: list[ActedOn],
    named: list[uuid.UUID],
    dry_run: bool,
    refusal: str,
    destination: str | None,
) -> int:
    """Print what was done (or would be), and why any named event was not: exit 1 if one was not."""
    shown = f"would {verb}" if dry_run else verb
    for delivery in acted:
        print(f"{shown} {delivery.event_id} to {delivery.destination}")
    print(f"{len(acted)} deliveries: {shown}")
    refused = [event_id for event_id in named if str(event_id) not in {delivery.event_id for delivery in acted}]
    for event_id in refused:
        try:
            detail = await event_detail(engine, event_id, destination=destination)
            states = ", ".join(
                f"{delivery.status} to {delivery.destination}"
                for delivery in detail.deliveries
                if destination is None or delivery.destination == destination
            )
            print(f"{event_id} is {states or 'delivered nowhere'}; {refusal}", file=sys.stderr)
        except (EventNotFound, DeliveryNotFound) as missing:
            print(missing.detail, file=sys.stderr)
    return 1 if refused else 0


async def _redrive(engine, settings: Settings, args: argparse.Namespace) -> int:
    if not (args.event_ids or args.all_failed or args.order_id):
        print("name EVENT_IDs, or use --all-failed or --order-id", file=sys.stderr)
        return 2
    named = await _event_ids(engine, args.event_ids)
    redriven = await redrive_failed(
        engine,
        requested_by=_requested_by(),
        event_ids=named or None,
        order_id=args.order_id,
        destination=args.destination,
        dry_run=args.dry_run,
    )
    refusal = "only a FAILED delivery can be redriven"
    return await _act(engine, "redrive", redriven, named, args.dry_run, refusal, args.destination)


async def _retry_now(engine, settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.event_ids) == args.all:
        print("name EVENT_IDs, or use --all (not both)", file=sys.stderr)
        return 2
    named = await _event_ids(engine, args.event_ids)
    pulled = await retry_now(
        engine,
        requested_by=_requested_by(),
        event_ids=named or None,
        destination=args.destination,
        dry_run=args.dry_run,
    )
    refusal = "only a PENDING delivery can be retried now"
    return await _act(engine, "retry now", pulled, named, args.dry_run, refusal, args.destination)


async def _replay(engine, settings: Settings, args: argparse.Namespace) -> int:
    if args.order_id is None and args.since is None:
        print("use --order-id N, or --since T (and optionally --until T)", file=sys.stderr)
        return 2
    if args.until is not None and args.since is None:
        print("--until needs --since", file=sys.stderr)
        return 2
    selection = ReplaySelection(order_id=args.order_id, since=args.since, until=args.until)
    replayed = await replay_sent(
        engine, selection, requested_by=_requested_by(), destination=args.destination, dry_run=args.dry_run
    )
    return await _act(engine, "replay", replayed, [], args.dry_run, "", args.destination)


async def _discard(engine, settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.event_ids) == args.all_failed:
        print("name EVENT_IDs, or use --all-failed --older-than AGE (not both)", file=sys.stderr)
        return 2
    if args.all_failed and args.older_than is None:
        print("--all-failed needs --older-than (e.g. 30d; 0s for every FAILED delivery)", file=sys.stderr)
        return 2
    named = await _event_ids(engine, args.event_ids)
    discarded = await discard_failed(
        engine,
        requested_by=_requested_by(),
        event_ids=named or None,
        older_than_seconds=args.older_than.total_seconds() if args.older_than is not None else None,
        destination=args.destination,
        dry_run=args.dry_run,
    )
    refusal = "only a FAILED delivery can be discarded"
    return await _act(engine, "discard", discarded, named, args.dry_run, refusal, args.destination)
