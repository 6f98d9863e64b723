"""`sneaker-orders run`: the whole system in the foreground, stopped together by Ctrl-C.

Embedded PostgreSQL unless DATABASE_URL is set, the Temporal dev server (Web UI on :8233) unless
TEMPORAL_ADDRESS is set, the demo platform on :8081 unless EXTERNAL_PLATFORM_URL is set; then
migrations, the demo catalog (once), the worker and the API on :8000. Secrets left unset
(ADMIN_TOKEN, AUTH_JWT_SECRET, PAYMENT_WEBHOOK_SECRET) are generated once under the data directory
and passed to the processes; the banner, printed once the API answers, says how to use them.
"""

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devstack.dev_secrets import dev_secrets_path, secrets_environment, with_dev_secrets
from devstack.local_postgres import with_database
from sneaker_orders.redaction import without_credentials
from sneaker_orders.settings import Settings

log = logging.getLogger(__name__)

# How long the API may take to answer /healthz after its process started.
API_START_TIMEOUT_SECONDS = 60


def run_everything(settings: Settings) -> int:
    """Start what is not configured elsewhere, prepare the database, then supervise the services."""
    from db.catalog.seeding import demo_catalog, seed_catalog
    from db.migrate import upgrade_to_newest
    from devstack.local_temporal import start_temporal_dev_server

    _stop_on_sigterm()
    given = settings
    # Every service gets the development secrets of the data directory for what the environment leaves unset.
    settings = with_dev_secrets(with_database(settings))
    upgrade_to_newest(settings.database_url)
    seeded = asyncio.run(seed_catalog(settings.database_url, demo_catalog(), only_if_empty=True))
    if seeded:
        log.info("seeded the demo catalog: %d products, %d coupons", seeded.products, seeded.coupons)

    started: dict[str, subprocess.Popen] = {}
    try:
        if not settings.temporal_address:
            started["temporal"] = start_temporal_dev_server(
                settings.data_dir / "temporal", port=settings.temporal_port, ui_port=settings.temporal_ui_port
            )
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "TEMPORAL_ADDRESS": settings.temporal_target,
            "EXTERNAL_PLATFORM_URL": settings.platform_url,
            **secrets_environment(settings),
        }
        services = {
            "worker": ["worker"],
            "api": ["api", "--port", str(settings.api_port)],
        }
        if not settings.external_platform_url:
            services = {"sink": ["sink"], **services}
        for name, arguments in services.items():
            # Own sessions: Ctrl-C reaches only this supervisor, which stops them in order.
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "cli.main", *arguments], env=env, start_new_session=True
            )
        try:
            if not _wait_until_answering(f"{_api_url(settings)}/healthz", started):
                return 1
        except KeyboardInterrupt:
            return 0
        print(_banner(settings, given), flush=True)
        return _supervise(started)
    finally:
        _stop(started)


def _api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.api_port}"


def _wait_until_answering(url: str, processes: dict[str, subprocess.Popen]) -> bool:
    """Poll `url` until it answers 200; False if a service exits or time runs out first."""
    deadline = time.monotonic() + API_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                log.error("%s exited with %s before the API answered", name, process.returncode)
                return False
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    log.error("the API did not answer %s within %ss", url, API_START_TIMEOUT_SECONDS)
    return False


def _banner(settings: Settings, given: Settings) -> str:
    """What the user needs to start: where everything is, the development secrets, how to get a customer token.

    URLs are shown without user and password (an EXTERNAL_PLATFORM_URL may carry them).
    """
    api = _api_url(settings)
    command = os.path.relpath(Path(sys.executable).parent / "sneaker-orders")
    lines = [
        "",
        "sneaker-orders is up",
        f"  {'API':<22} {api}   (docs: {api}/docs and {api}/redoc)",
        f"  {'Temporal Web UI':<22} {settings.temporal_ui_url}",
        *(
            f"  {destination.name:<22} {without_credentials(destination.url)}"
            for destination in settings.destinations()
        ),
    ]
    for name, value in secrets_environment(settings).items():
        if getattr(given, name.lower()) is None:  # from the data directory, where `make run` generated it
            shown, origin = value, f"generated, kept in {dev_secrets_path(settings)}"
        else:
            shown, origin = f"${name}", "from the environment"
        lines.append(f"  {name:<22} {shown}   ({origin})")
        if name == "ADMIN_TOKEN":
            lines.append(f'  {"":<22} curl -H "Authorization: Bearer {shown}" {api}/events')
    lines += [
        f"  {'customer token':<22} {command} token --customer c-1",
        f"  {'pay an order':<22} {command} pay ORDER_ID",
        "  Ctrl-C stops it all",
        "",
    ]
    return without_credentials("\n".join(lines))


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`) stops everything in order, as Ctrl-C does."""

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _supervise(processes: dict[str, subprocess.Popen]) -> int:
    """Wait for Ctrl-C or SIGTERM, or for a service to exit (which stops the rest)."""
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    log.error("%s exited with %s; stopping the rest", name, process.returncode)
                    return process.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
        return 0


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    """Stop the services in reverse order of start: API and worker first, Temporal last."""
    for name, process in reversed(processes.items()):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            process.kill()
            process.wait()
