"""The `sneaker-orders` console script: one subcommand per process or operator task."""

import argparse
import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError

from cli.events import add_events_commands, run_events_command
from devstack.local_postgres import with_database
from sneaker_orders.logging_setup import configure_logging
from sneaker_orders.redaction import without_credentials
from sneaker_orders.settings import Settings

log = logging.getLogger("sneaker_orders.cli")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read the settings once, and run the subcommand."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as refused:
        print(without_credentials(configuration_refused(refused)), file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    return args.command(settings, args) or 0


def configuration_refused(error: ValidationError) -> str:
    """The settings' validation errors as a person reads them: one line per environment variable."""
    lines = ["sneaker-orders: the configuration was refused:"]
    for problem in error.errors(include_url=False):
        variable = "_".join(str(part) for part in problem["loc"]).upper() or "configuration"
        lines.append(f"  {variable}: {problem['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _only_warnings() -> None:
    """For commands whose output people read (events, pay): no "PostgreSQL ready" among it, only problems."""
    logging.getLogger().setLevel(logging.WARNING)


def _events(settings: Settings, args: argparse.Namespace) -> int:
    _only_warnings()
    return run_events_command(with_database(settings), args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sneaker-orders", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the whole system in the foreground (what `make run` runs)")
    run.set_defaults(command=_run)

    api = commands.add_parser("api", help="the HTTP API only")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--access-log", action="store_true", help="log every request")
    api.set_defaults(command=_api)

    worker = commands.add_parser("worker", help="the Temporal worker (creates or updates the relay schedule)")
    worker.set_defaults(command=_worker)

    sink = commands.add_parser("sink", help="the demo external data platform")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=None, help="default: SINK_PORT (8081)")
    sink.add_argument("--fail-rate", type=float, default=0.0, help="share of requests to fail at random (0-1)")
    sink.add_argument("--fail-status", type=int, action="append", help="status of random failures (repeatable)")
    sink.add_argument("--retry-after", help="Retry-After header sent with failures")
    sink.add_argument("--delay-ms", type=int, default=0, help="answer this much later")
    sink.add_argument("--down", action="store_true", help="drop every connection without answering")
    sink.add_argument("--token", help="bearer token deliveries must carry (default: PLATFORM_TOKEN)")
    sink.add_argument("--signing-secret", help="Standard Webhooks secret to verify (default: PLATFORM_SIGNING_SECRET)")
    sink.set_defaults(command=_sink)

    token = commands.add_parser("token", help="a customer token (JWT) signed with AUTH_JWT_SECRET, for trying the API")
    token.add_argument("--customer", required=True, help="the customer id (the token's sub)")
    token.add_argument("--ttl", type=int, default=3600, metavar="SECONDS", help="how long it is valid (3600)")
    token.set_defaults(command=_token)

    pay = commands.add_parser("pay", help="pay an order as the payment provider would: a signed webhook to the API")
    pay.add_argument("order_id", type=int, metavar="ORDER_ID")
    pay.add_argument("--payment-id", help="the provider's payment id (default: a new one)")
    pay.add_argument("--amount", type=int, help="KRW paid (default: the order's total, read from the database)")
    pay.add_argument("--api-url", default="http://127.0.0.1:8000", help="the API (default http://127.0.0.1:8000)")
    pay.set_defaults(command=_pay)

    add_events_commands(commands, _events)

    migrate = commands.add_parser("migrate", help="bring the schema to the newest version")
    migrate.set_defaults(command=_migrate)

    seed = commands.add_parser("seed", help="upsert products and coupons from a catalog file")
    seed.add_argument("file", nargs="?", type=Path, help="catalog JSON; the demo catalog when omitted")
    seed.add_argument("--if-empty", action="store_true", help="only when no product exists yet (seed once)")
    seed.set_defaults(command=_seed)
    return parser


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from cli.supervisor import run_everything

    return run_everything(settings)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.http_server import uvicorn_config
    from sneaker_orders.tracing import configure_tracing, shutdown_tracing

    try:
        configure_tracing(settings, "sneaker-orders-api")
        app = create_app(api_settings(settings))
    except ValueError as refused:
        print(f"sneaker-orders api cannot start: {refused}", file=sys.stderr)
        return 2
    try:
        uvicorn.Server(
            uvicorn_config(
                app, host=args.host, port=args.port, access_log=args.access_log, log_level="info", log_config=None
            )
        ).run()
    finally:
        shutdown_tracing()
    return 0


def api_settings(settings: Settings) -> Settings:
    """What the API runs with: as configured, or, on the embedded database of a data directory, development secrets.

    Without DATABASE_URL the API runs on the embedded PostgreSQL of SNEAKER_ORDERS_DATA_DIR, a
    development setup: secrets left unset are then taken from that directory (created on first use)
    so that `sneaker-orders token` and `pay` sign what the API verifies. With DATABASE_URL set, no
    secret is ever generated: the API refuses to start without them.
    """
    if settings.database_url:
        return settings
    from devstack.dev_secrets import dev_secrets_path, with_dev_secrets

    log.warning("no DATABASE_URL: development setup; unset secrets come from %s", dev_secrets_path(settings))
    return with_dev_secrets(with_database(settings))


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from api.customer_auth import customer_id_problem
    from devstack.customer_tokens import mint_customer_token
    from devstack.dev_secrets import with_dev_secrets

    problem = customer_id_problem(args.customer)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    print(mint_customer_token(with_dev_secrets(settings), args.customer, ttl_seconds=args.ttl))
    return 0


def _pay(settings: Settings, args: argparse.Namespace) -> int:
    import httpx

    from devstack.dev_secrets import with_dev_secrets
    from devstack.payment_provider import send_payment, sign_payment

    _only_warnings()
    amount = (
        args.amount if args.amount is not None else asyncio.run(_order_total(with_database(settings), args.order_id))
    )
    if amount is None:
        print(f"order {args.order_id} does not exist", file=sys.stderr)
        return 1
    payment_id = args.payment_id or f"pay-{uuid.uuid4().hex[:12]}"
    webhook = sign_payment(with_dev_secrets(settings), args.order_id, payment_id, amount)
    try:
        response = send_payment(args.api_url, webhook)
    except httpx.HTTPError as unreachable:
        print(without_credentials(f"the API at {args.api_url} did not answer: {unreachable!r}"), file=sys.stderr)
        return 1
    print(without_credentials(f"{response.status_code} {response.text}"))
    return 0 if response.is_success else 1


async def _order_total(settings: Settings, order_id: int) -> int | None:
    from db.engine import create_engine
    from db.orders.errors import OrderNotFound
    from db.orders.view import read_order

    engine = create_engine(settings.database_url, pool_size=1, application_name="sneaker-orders-cli")
    try:
        return (await read_order(engine, order_id)).total
    except OrderNotFound:
        return None
    finally:
        await engine.dispose()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from sneaker_orders.tracing import configure_tracing, shutdown_tracing
    from worker import run_worker

    try:
        configure_tracing(settings, "sneaker-orders-worker")
    except ValueError as refused:
        print(f"sneaker-orders worker cannot start: {refused}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_worker(with_database(settings)))
    finally:
        shutdown_tracing()
    # The worker has shut down cleanly and closed what it opened. Interpreter teardown can still
    # abort (SIGABRT) when the Temporal SDK's Rust threads touch the GIL during finalization
    # (temporalio/sdk-python#300), so the process ends here instead.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _sink(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from devstack.sink.app import create_sink_app
    from devstack.sink.faults import FaultSettings
    from devstack.sink.verification import DeliveryCheck

    faults = FaultSettings(
        down=args.down,
        delay_ms=args.delay_ms,
        fail_rate=args.fail_rate,
        fail_statuses=args.fail_status or [503],
        retry_after=args.retry_after,
    )
    token, secret = settings.platform_token, settings.platform_signing_secret
    check = DeliveryCheck(
        token=args.token or (token.get_secret_value() if token else None),
        signing_secret=args.signing_secret or (secret.get_secret_value() if secret else None),
    )
    app = create_sink_app(faults, check)
    web.run_app(app, host=args.host, port=args.port or settings.sink_port, access_log=None)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import upgrade_to_newest

    upgrade_to_newest(with_database(settings).database_url)
    print("schema is at the newest version")
    return 0


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    from db.catalog.seeding import CatalogRefused, demo_catalog, read_catalog_file, seed_catalog

    try:
        catalog = read_catalog_file(args.file) if args.file else demo_catalog()
        summary = asyncio.run(seed_catalog(with_database(settings).database_url, catalog, only_if_empty=args.if_empty))
    except CatalogRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    if summary is None:
        print("the catalog already has products; nothing seeded")
    else:
        print(f"upserted {summary.products} products and {summary.coupons} coupons")
    return 0


if __name__ == "__main__":
    sys.exit(main())
