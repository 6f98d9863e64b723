"""What `make run` runs (`sneaker-orders run`): generated secrets, and a banner only once the API answers."""

import json
import os
import signal
import subprocess
import sys
import uuid

import httpx
import psutil
import psycopg
import pytest

from devstack.local_postgres import libpq_url
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.temporal_cli import delete_schedules


@pytest.fixture
def scratch_database_url(database_url) -> str:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS make_run")
        connection.execute("CREATE DATABASE make_run")
    return database_url.replace("/sneaker_orders?", "/make_run?")


@pytest.fixture
def start_run(scratch_database_url, temporal_address, sink_url, tmp_path):
    """Starts `sneaker-orders run` with this suite's PostgreSQL, Temporal and platform, the API on a free port.

    Returns (process, its output file, the API's URL, the data directory); stops it afterwards.
    """
    port, name = free_port(), f"run-{uuid.uuid4().hex[:8]}"
    schedules = [f"{name}-relay", f"{name}-expiry", f"{name}-retention"]
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ADMIN_TOKEN", "AUTH_JWT_SECRET", "PAYMENT_WEBHOOK_SECRET")
    } | {
        "SNEAKER_ORDERS_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": scratch_database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "EXTERNAL_PLATFORM_URL": sink_url,
        "API_PORT": str(port),
        "TEMPORAL_TASK_QUEUE": f"{name}-queue",
        "RELAY_SCHEDULE_ID": schedules[0],
        "ORDER_EXPIRY_SCHEDULE_ID": schedules[1],
        "RETENTION_SCHEDULE_ID": schedules[2],
        "WORKER_METRICS_PORT": "0",
    }
    output = tmp_path / "run.log"
    started = []

    def start(**variables: str):
        with output.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "run"],
                env=environment | variables,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, output, f"http://127.0.0.1:{port}", tmp_path / "data"

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
        delete_schedules(temporal_address, schedules)


def test_make_run_generates_the_secrets_and_prints_the_banner_once_the_api_answers(start_run):
    process, output, api_url, data_dir = start_run()

    def banner() -> str | None:
        assert process.poll() is None, output.read_text()
        text = output.read_text()
        return text if "sneaker-orders is up" in text else None

    text = wait_until(banner, timeout=120, interval=0.05, what="the banner")
    answered = httpx.get(f"{api_url}/healthz", timeout=5)

    assert answered.status_code == 200, "the banner came before the API listened"
    secrets_file = data_dir / "secrets.json"
    secrets = json.loads(secrets_file.read_text())
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert set(secrets) == {"admin_token", "auth_jwt_secret", "payment_webhook_secret"}
    for name, value in secrets.items():  # each generated secret is printed, under its variable's name
        assert f"{name.upper()}" in text and value in text, name
    assert "token --customer c-1" in text and f"{api_url}/docs" in text
    events = httpx.get(f"{api_url}/events", headers={"Authorization": f"Bearer {secrets['admin_token']}"})
    assert events.status_code == 200

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0


def test_make_run_reuses_the_secrets_kept_in_the_data_directory(start_run, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secrets.json").write_text(
        json.dumps(
            {"admin_token": "a" * 40, "auth_jwt_secret": "b" * 40, "payment_webhook_secret": "whsec_" + "c" * 40}
        )
    )
    process, output, api_url, _ = start_run()

    wait_until(lambda: "sneaker-orders is up" in output.read_text(), timeout=120, what="the banner")

    assert httpx.get(f"{api_url}/events", headers={"Authorization": f"Bearer {'a' * 40}"}).status_code == 200


def test_a_secret_the_environment_gives_is_not_printed(start_run):
    given = "whsec_" + "Z2l2ZW4gYnkgdGhlIGVudmlyb25tZW50IGFuZCBrZXB0IHNlY3JldA=="
    process, output, _, _ = start_run(PAYMENT_WEBHOOK_SECRET=given)

    text = wait_until(lambda: output.read_text() if "sneaker-orders is up" in output.read_text() else None, timeout=120)

    assert "PAYMENT_WEBHOOK_SECRET" in text and "$PAYMENT_WEBHOOK_SECRET   (from the environment)" in text
    assert given not in text


def test_no_url_password_is_printed_by_the_banner_or_the_logs(start_run, sink_url):
    password = "platform-password-that-must-stay-secret"
    with_userinfo = sink_url.replace("http://", f"http://relay:{password}@")
    process, output, _, _ = start_run(EXTERNAL_PLATFORM_URL=with_userinfo, LOG_FORMAT="json")

    wait_until(lambda: "sneaker-orders is up" in output.read_text(), timeout=120, what="the banner")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0

    text = output.read_text()
    assert f"platform               {sink_url}" in text  # the banner names the platform, without its userinfo
    assert password not in text and "relay:" not in text


def test_sigterm_stops_every_service_it_started(start_run):
    process, output, _, _ = start_run()
    wait_until(lambda: "sneaker-orders is up" in output.read_text(), timeout=120, what="the banner")
    services = psutil.Process(process.pid).children(recursive=True)
    assert {"api", "worker"} <= {part for service in services for part in service.cmdline()}

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=60) == 0, output.read_text()
    assert [service.pid for service in services if service.is_running() and service.status() != "zombie"] == []
