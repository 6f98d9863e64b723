"""The API as its own process (`sneaker-orders api`), for what only a process shows: its memory, its start-up."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.cli_process import serving_command
from tests.support.customers import JWT_SECRET
from tests.support.payments import WEBHOOK_SECRET


def api_environment(database_url: str, **extra: str) -> dict[str, str]:
    """What an API process of the suite needs: its database and the suite's customer and payment secrets."""
    return {
        "DATABASE_URL": database_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **extra,
    }


@dataclass(frozen=True)
class ApiProcess:
    """A running API: its base URL and its process."""

    url: str
    process: psutil.Process

    def rss_bytes(self) -> int:
        return self.process.memory_info().rss


@contextmanager
def api_process(environment: dict[str, str], log_file: Path) -> Iterator[ApiProcess]:
    """Start `sneaker-orders api` on a free port with `environment`, its output to `log_file`; stopped afterwards."""
    command_environment = {**os.environ, **environment}
    with serving_command(["api"], command_environment, log_file, "/healthz") as (url, process):
        yield ApiProcess(url, psutil.Process(process.pid))
