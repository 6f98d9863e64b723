"""A `sneaker-orders` command as its own process on a free loopback port: started, awaited, stopped."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.polling import wait_until
from tests.support.ports import free_port


@contextmanager
def serving_command(
    command: list[str], environment: dict[str, str], log_file: Path, ready_path: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `sneaker-orders COMMAND --port P` with `environment`, its output to `log_file`, until `GET {ready_path}`
    answers 200; yields its base URL and process, and stops it afterwards (SIGTERM, then SIGKILL after 15 s)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *command, "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        what = f"`sneaker-orders {' '.join(command)}` to answer"
        wait_until(lambda: process.poll() is not None or _answers(f"{url}{ready_path}"), timeout=60, what=what)
        if process.poll() is not None:
            raise RuntimeError(
                f"`sneaker-orders {' '.join(command)}` exited with {process.returncode}: {log_file.read_text()}"
            )
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
