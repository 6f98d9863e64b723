"""Relay workers as real processes (`sneaker-orders worker`), each test with its own schedule and task queue."""

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.local_temporal import TEMPORAL_BINARY
from tests.support.polling import wait_until
from tests.support.temporal_cli import delete_schedules

# Short intervals so that a test sees several runs, retries and lease expiries in seconds.
RELAY_TEST_SETTINGS = {
    "RELAY_INTERVAL_SECONDS": "1",
    "RELAY_BACKOFF_BASE_SECONDS": "0.05",
    "RELAY_BACKOFF_MAX_SECONDS": "0.2",
    "RELAY_MAX_ATTEMPTS": "4",
    "RELAY_LEASE_SECONDS": "3",
    "RELAY_HTTP_TIMEOUT_SECONDS": "2",
    "RELAY_LANES": "2",
    "RELAY_BREAKER_PROBE_SECONDS": "0.5",
    "DATABASE_POOL_SIZE": "4",
    "ORDER_EXPIRY_INTERVAL_SECONDS": "1",
    # Any free port: tests run several workers at once, and never on the default 9464.
    "WORKER_METRICS_PORT": "0",
}


@dataclass
class RelayConfig:
    """Where a test's workers connect, and the names that keep its relay apart from other tests'."""

    database_url: str
    temporal_address: str
    platform_url: str
    log_dir: Path
    schedule_id: str = field(default_factory=lambda: f"relay-{uuid.uuid4().hex[:8]}")
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def task_queue(self) -> str:
        return f"{self.schedule_id}-queue"

    @property
    def expiry_schedule_id(self) -> str:
        return f"{self.schedule_id}-expiry"

    @property
    def retention_schedule_id(self) -> str:
        return f"{self.schedule_id}-retention"

    @property
    def schedule_ids(self) -> tuple[str, ...]:
        """The relay's, the expiry's and the retention's schedule: every one this test's workers keep."""
        return (self.schedule_id, self.expiry_schedule_id, self.retention_schedule_id)

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **RELAY_TEST_SETTINGS,
            "DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "EXTERNAL_PLATFORM_URL": self.platform_url,
            "RELAY_SCHEDULE_ID": self.schedule_id,
            "ORDER_EXPIRY_SCHEDULE_ID": self.expiry_schedule_id,
            "RETENTION_SCHEDULE_ID": self.retention_schedule_id,
            "TEMPORAL_TASK_QUEUE": self.task_queue,
            **self.extra,
        }


class WorkerProcess:
    """One `sneaker-orders worker` process, its output in a log file."""

    def __init__(self, config: RelayConfig, name: str) -> None:
        self.log_path = config.log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self._terminated = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            env=config.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_serving(self, timeout: float = 30) -> None:
        wait_until(
            lambda: "relaying to" in self.log_path.read_text() or self.process.poll() is not None,
            timeout=timeout,
            what="the worker to start",
        )
        assert self.process.poll() is None, f"worker exited:\n{self.log_path.read_text()}"

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-flight, as in a crash."""
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM (once), without waiting: `stop` waits."""
        if self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for a clean exit."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text()

    def metrics(self) -> str:
        """The worker's Prometheus text, from the endpoint it logged at start."""
        url = re.search(r"worker metrics on (http://\S+)", self.output()).group(1)
        return httpx.get(url, timeout=10).text


class Relay:
    """The relay of one test: its configuration, its worker processes, and the `temporal` CLI pointed at it."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.workers: list[WorkerProcess] = []

    def start_worker(self, name: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.config, name or f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        worker.wait_until_serving()
        return worker

    def temporal(self, *args: str) -> str:
        """Run the real `temporal` CLI against this test's server, as an operator would."""
        finished = subprocess.run(
            [str(TEMPORAL_BINARY), *args, "--address", self.config.temporal_address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert finished.returncode == 0, finished.stderr
        return finished.stdout

    def describe_schedule(self, schedule_id: str) -> dict:
        """`temporal schedule describe` of `schedule_id`, parsed."""
        return json.loads(self.temporal("schedule", "describe", "--schedule-id", schedule_id, "-o", "json"))

    def list_workflows(self, query: str) -> list[dict]:
        """`temporal workflow list -q query`, parsed (no output: no run)."""
        listed = self.temporal("workflow", "list", "-q", query, "-o", "json")
        return json.loads(listed) if listed.strip() else []

    def stop_all(self) -> None:
        # All at once: each may take its shutdown grace, and they need not take it one after the other.
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop()
        delete_schedules(self.config.temporal_address, self.config.schedule_ids)
