"""`sneaker-orders run`: every part of the system in the foreground, stopped together by Ctrl-C."""

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

from sneaker_orders.settings import Settings

log = logging.getLogger(__name__)


def run_everything(settings: Settings) -> int:
    """Start the database (embedded unless configured), migrate, seed once, then run the services."""
    from db.catalog.seeding import demo_catalog, seed_catalog
    from db.migrate import upgrade_to_newest
    from sneaker_orders.cli import with_database

    settings = with_database(settings)
    upgrade_to_newest(settings.database_url)
    seeded = asyncio.run(seed_catalog(settings.database_url, demo_catalog(), only_if_empty=True))
    if seeded:
        log.info("seeded the demo catalog: %d products, %d coupons", seeded.products, seeded.coupons)
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    services = {"api": [sys.executable, "-m", "sneaker_orders.cli", "api", "--port", "8000"]}
    return _supervise(services, env)


def _supervise(services: dict[str, list[str]], env: dict[str, str]) -> int:
    """Run the services until Ctrl-C or until one of them exits; then stop them all."""
    processes = {name: subprocess.Popen(command, env=env) for name, command in services.items()}
    log.info("started %s; Ctrl-C stops everything", ", ".join(processes))
    exit_code = 0
    try:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    log.error("%s exited with %s; stopping the rest", name, process.returncode)
                    return process.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        _stop(processes)
    return exit_code


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            process.kill()
            process.wait()
