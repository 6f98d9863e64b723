"""The API as its own process (`sneaker-orders api`), for what only a process shows: its memory, its start-up."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.support.customers import JWT_SECRET
from tests.support.payments import WEBHOOK_SECRET
from tests.support.polling import wait_until
from tests.support.ports import free_port


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


def _answers(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        return True
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def api_process(environment: dict[str, str], log_file: Path) -> Iterator[ApiProcess]:
    """Start `sneaker-orders api` on a free port with `environment`, its output to `log_file`; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--port", str(port)],
            env={**os.environ, **environment},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: _answers(url, process), timeout=60, what="the API process to answer")
        if process.poll() is not None:
            raise RuntimeError(f"the API process exited with {process.returncode}: {log_file.read_text()}")
        yield ApiProcess(url, psutil.Process(process.pid))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
