"""`sneaker-orders events list|show|redrive`: the outbox for operators, straight from the database."""

import argparse
import asyncio
import json
import sys
import uuid
from dataclasses import asdict

from db.engine import create_engine
from db.outbox.breaker import all_breakers
from db.outbox.operations import EventNotFound, event_detail, list_events, redrive_failed
from sneaker_orders.settings import Settings


def add_events_commands(commands, handler) -> None:
    """Register `events` and its subcommands, run by `handler(settings, args)`."""
    events = commands.add_parser("events", help="list outbox events, show one with its attempts, redrive")
    events.set_defaults(command=handler)
    actions = events.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="events, newest first")
    listing.add_argument("--status", choices=["PENDING", "PROCESSING", "SENT", "FAILED"])
    listing.add_argument("--order-id", type=int)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(events_action=_list)

    show = actions.add_parser("show", help="one event with its payload, attempts and redrives")
    show.add_argument("event_id", type=uuid.UUID)
    show.add_argument("--json", action="store_true")
    show.set_defaults(events_action=_show)

    redrive = actions.add_parser("redrive", help="put FAILED events back to PENDING, due now")
    redrive.add_argument("event_ids", nargs="*", type=uuid.UUID, metavar="EVENT_ID")
    redrive.add_argument("--all-failed", action="store_true", help="every FAILED event (or of --order-id)")
    redrive.add_argument("--order-id", type=int, help="the FAILED events of this order")
    redrive.add_argument("--dry-run", action="store_true", help="show what would be redriven, change nothing")
    redrive.set_defaults(events_action=_redrive)


def run_events_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the chosen `events` action against DATABASE_URL (or the embedded database)."""

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1, application_name="sneaker-orders-cli")
        try:
            return await args.events_action(engine, settings, args)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _list(engine, settings: Settings, args: argparse.Namespace) -> int:
    events = await list_events(engine, status=args.status, order_id=args.order_id, limit=args.limit)
    if args.json:
        for event in events:
            print(json.dumps(asdict(event), default=str))
        return 0
    print(f"{'EVENT_ID':36}  {'TYPE':15} {'ORDER':>8} {'SEQ':>3}  {'STATUS':10} {'RETRIES':>7}  LAST_ERROR")
    for event in events:
        print(
            f"{event.event_id:36}  {event.event_type:15} {event.aggregate_id:>8} {event.sequence:>3}  "
            f"{event.status:10} {event.retry_count:>7}  {event.last_error or ''}"
        )
    for breaker in await all_breakers(engine):  # is the relay delivering, or holding for an outage?
        print(breaker.describe())
    return 0


async def _show(engine, settings: Settings, args: argparse.Namespace) -> int:
    try:
        detail = await event_detail(engine, args.event_id)
    except EventNotFound as missing:
        print(missing, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(detail), default=str, indent=2))
        return 0
    event = detail.event
    print(f"event      {event.event_id}  {event.event_type} #{event.sequence}")
    print(f"of         {event.aggregate_type} {event.aggregate_id}")
    print(f"status     {event.status}, {event.retry_count} failed attempts, next attempt at {event.next_attempt_at}")
    print(f"created    {event.created_at}   sent {event.sent_at or '-'}")
    if event.last_error:
        print(f"last error {event.last_error}")
    print("attempts")
    for attempt in detail.attempts:
        print(
            f"  #{attempt.attempt_number} {attempt.attempted_at}  {attempt.outcome:13} "
            f"{attempt.http_status or '-':>3}  {attempt.error or ''}"
        )
        if attempt.workflow_id and attempt.run_id:
            print(f"      {settings.temporal_run_url(attempt.workflow_id, attempt.run_id)}")
    for redrive in detail.redrives:
        print(f"redriven   {redrive.redriven_at} by {redrive.requested_by} (had {redrive.retry_count_before} failures)")
    return 0


async def _redrive(engine, settings: Settings, args: argparse.Namespace) -> int:
    if not (args.event_ids or args.all_failed or args.order_id):
        print("name EVENT_IDs, or use --all-failed or --order-id", file=sys.stderr)
        return 2
    redriven = await redrive_failed(
        engine, requested_by="cli", event_ids=args.event_ids or None, order_id=args.order_id, dry_run=args.dry_run
    )
    verb = "would redrive" if args.dry_run else "redriven"
    for event_id in redriven:
        print(f"{verb} {event_id}")
    print(f"{len(redriven)} FAILED events {verb}")
    return 0
