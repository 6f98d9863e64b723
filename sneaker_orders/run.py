"""`sneaker-orders run`: the whole system in the foreground, stopped together by Ctrl-C.

Embedded PostgreSQL unless DATABASE_URL is set, the Temporal dev server (Web UI on :8233) unless
TEMPORAL_ADDRESS is set, the demo platform on :8081 unless EXTERNAL_PLATFORM_URL is set; then
migrations, the demo catalog (once), the worker and the API on :8000.
"""

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

from sneaker_orders.settings import Settings

log = logging.getLogger(__name__)

API_PORT = 8000


def run_everything(settings: Settings) -> int:
    """Start what is not configured elsewhere, prepare the database, then supervise the services."""
    from db.catalog.seeding import demo_catalog, seed_catalog
    from db.migrate import upgrade_to_newest
    from sneaker_orders.cli import with_database
    from sneaker_orders.dev_secrets import secrets_environment, with_dev_secrets
    from sneaker_orders.local_temporal import search_attribute_limits_environment, start_temporal_dev_server

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
            **({} if settings.temporal_address else search_attribute_limits_environment()),
            "DATABASE_URL": settings.database_url,
            "TEMPORAL_ADDRESS": settings.temporal_target,
            "EXTERNAL_PLATFORM_URL": settings.platform_url,
            **secrets_environment(settings),
        }
        services = {
            "worker": ["worker"],
            "api": ["api", "--port", str(API_PORT)],
        }
        if not settings.external_platform_url:
            services = {"sink": ["sink"], **services}
        for name, arguments in services.items():
            # Own sessions: Ctrl-C reaches only this supervisor, which stops them in order.
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "sneaker_orders.cli", *arguments], env=env, start_new_session=True
            )
        _announce(settings)
        return _supervise(started)
    finally:
        _stop(started)


def _announce(settings: Settings) -> None:
    log.info(
        "sneaker-orders is up: API http://127.0.0.1:%d/docs | Temporal Web UI %s | platform %s | Ctrl-C stops it all",
        API_PORT,
        settings.temporal_ui_url,
        settings.platform_url,
    )


def _supervise(processes: dict[str, subprocess.Popen]) -> int:
    """Wait for Ctrl-C, or for a service to exit (which stops the rest)."""
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
