"""Screenshots of the Temporal Web UI for the README ("Watching deliveries in the Temporal Web UI") and
docs/operations.md ("Tracing one order's delivery").

Runs `sneaker-orders run` (what `make run` runs) in a fresh data directory on free ports: embedded
PostgreSQL, the Temporal dev server and its Web UI, the demo platform, the worker and the API. Places
a few orders, tells the platform to refuse the next delivery (`PUT /faults {"fail_next": [400]}`, then
`fail_orders`: every time) and places one more, then another once the first is refused: the platform accepts it,
so the refusal is the event's own, and the first order's OrderCreated ends FAILED (until the platform is seen
accepting an event sent after a refusal, the refused event is HELD). Then headless Chromium shoots:

  docs/observe-orderids-filter.png  the workflow list filtered by OrderIds = '<the failed order's id>'
  docs/observe-failed-run.png       the relay run in which its delivery was held, then failed, once ended: its
                                    current details (User Metadata) say what it sent, retried, held and failed,
                                    naming the failed event, the breaker, the backlog, what the names hold
  docs/observe-failed-run-memo.png  the same run's memo, kept after the run: ended, failed events, summary

Usage: .venv/bin/python docs/screenshots.py [--chromium /usr/bin/chromium] [--out docs]
"""

import argparse
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import jwt
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL = Path(sys.executable).parent / "temporal"
WIDTH, HEIGHT = 1280, 800
# Chromium's own start-up fetches and background services: none of them is wanted, or reachable.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-port=0",
]
# What the page shows, for the check that it shows what it should: its text, and the Markdown the Web UI
# renders in iframes (current details, summary) as their source URLs carry it.
PAGE_TEXT = (
    "document.body ? document.body.innerText + Array.from(document.querySelectorAll('iframe'))"
    ".map(frame => decodeURIComponent(frame.src || '')).join(' ') : ''"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


class System:
    """`sneaker-orders run` on free ports in a data directory of its own."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.api_port, self.sink_port, self.temporal_port, self.ui_port = (free_port() for _ in range(4))
        self.data_dir = data_dir
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_URL", "TEMPORAL_", "EXTERNAL_PLATFORM_URL", "OTEL_"))
            and key not in ("ADMIN_TOKEN", "AUTH_JWT_SECRET", "PAYMENT_WEBHOOK_SECRET")
        } | {
            "SNEAKER_ORDERS_DATA_DIR": str(data_dir),
            "API_PORT": str(self.api_port),
            "SINK_PORT": str(self.sink_port),
            "TEMPORAL_PORT": str(self.temporal_port),
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "TEMPORAL_UI_URL": f"http://127.0.0.1:{self.ui_port}",
            "WORKER_METRICS_PORT": "0",
        }
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "run"], env=environment, stdout=log, stderr=log
            )
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=30)
        self.sink = httpx.Client(base_url=f"http://127.0.0.1:{self.sink_port}", timeout=30)
        wait_for(lambda: self.process.poll() is not None or self.api.get("/healthz").status_code == 200, "the API")
        if self.process.poll() is not None:
            raise RuntimeError(f"sneaker-orders run exited; see {log_path}")
        secrets = json.loads((data_dir / "secrets.json").read_text())
        self.admin = {"Authorization": f"Bearer {secrets['admin_token']}"}
        self._jwt_secret = secrets["auth_jwt_secret"]

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def place_order(self, customer: str, product_id: int) -> int:
        now = int(time.time())
        token = jwt.encode({"sub": customer, "iat": now, "exp": now + 3600}, self._jwt_secret, algorithm="HS256")
        response = self.api.post(
            "/orders",
            json={"items": [{"product_id": product_id, "quantity": 1}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        return response.json()["order_id"]

    def events(self, status: str, **params: object) -> list[dict]:
        return self.api.get("/events", params={"status": status, **params}, headers=self.admin).json()

    def temporal(self, *args: str) -> str:
        address = f"127.0.0.1:{self.temporal_port}"
        return subprocess.run(
            [str(TEMPORAL), *args, "--address", address], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=90)


class HeadlessChromium:
    """Headless Chromium with a fresh profile, driven over the DevTools protocol: a page is shot once it shows
    what it should (the Web UI fills its pages after they load)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        shutil.rmtree(profile, ignore_errors=True)
        profile.mkdir(parents=True)
        self._stack = ExitStack()
        self._process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._stack.callback(self._stop)
        active = profile / "DevToolsActivePort"  # Chromium writes its port and path here
        wait_for(lambda: active.exists() and len(active.read_text().splitlines()) == 2, "Chromium", timeout=30)
        port, path = active.read_text().splitlines()
        self._socket = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}{path}", max_size=None))
        self._ids = itertools.count(1)
        self._session: str | None = None  # the page's, once attached; browser-wide calls before
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def shoot(self, url: str, path: Path, showing: list[str], top: str | None = None) -> None:
        """A WIDTH x HEIGHT PNG of `url` once its text includes every one of `showing`; scrolled so that the element
        whose text is `top` is at the top, if given."""
        self._call("Page.navigate", url=url)

        def evaluate(expression: str) -> object:
            return self._call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

        try:
            wait_for(lambda: all(text in (evaluate(PAGE_TEXT) or "") for text in showing), f"{url}", 60)
        except TimeoutError:
            raise TimeoutError(f"{url} does not show {showing}; it shows: {evaluate(PAGE_TEXT)!r:.2000}") from None
        if top is not None:
            found = evaluate(
                f"(() => {{ const element = document.evaluate({json.dumps(f'//*[normalize-space(text())={top!r}]')},"
                " document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;"
                " if (element) element.scrollIntoView({block: 'start'}); return !!element; })()"
            )
            if not found:
                raise RuntimeError(f"{url} shows no {top!r}")
        time.sleep(1)  # the iframes render what they were given
        path.write_bytes(base64.b64decode(self._call("Page.captureScreenshot", format="png")["data"]))
        print(f"{path}: {path.stat().st_size // 1024} KiB, {url}")

    def _call(self, method: str, **params) -> dict:
        call_id = next(self._ids)
        message = {"id": call_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        while True:
            answer = json.loads(self._socket.recv(timeout=60))
            if answer.get("id") == call_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def _stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def close(self) -> None:
        self._stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sneaker-orders-screenshots-"))
    system = System(scratch / "data", scratch / "run.log")
    try:
        products = [p for p in system.api.get("/products").json() if p["active"] and p["stock"] > 10]
        for number, product in enumerate(products[:4], start=1):
            system.place_order(f"c-{number}", product["id"])
        wait_for(lambda: len(system.events("SENT")) == 4, "the first four orders' events to be delivered")
        # A refusal is the event's own (FAILED) only once the platform is seen accepting another event sent after
        # it: until then it is HELD and tried again. So the platform refuses this order's event every time (its
        # first attempt by fail_next, or by fail_orders if that is set first), and the next order is placed once
        # the refusal is recorded.
        system.sink.put("/faults", json={"fail_next": [400]}).raise_for_status()
        failed_order = system.place_order("c-5", products[4]["id"])
        system.sink.put("/faults", json={"fail_orders": [str(failed_order)], "fail_statuses": [400]}).raise_for_status()
        wait_for(
            lambda: any(
                event["last_error"]
                for status in ("PENDING", "FAILED")
                for event in system.events(status, order_id=failed_order)
            ),
            "the platform to refuse the order's event",
        )
        system.place_order("c-6", products[5]["id"])
        [failed] = wait_for(lambda: system.events("FAILED"), "the refused delivery to end FAILED")
        wait_for(lambda: not system.events("PENDING") and not system.events("PROCESSING"), "the other deliveries")
        assert failed["aggregate_id"] == str(failed_order), failed

        [run] = wait_for(
            lambda: json.loads(system.temporal("workflow", "list", "-q", "DeliveryOutcomes = 'FAILED'", "-o", "json")),
            "the failing run to be found by its search attributes",
        )
        query = urllib.parse.quote(f"OrderIds = '{failed_order}'")
        execution = run["execution"]
        page = f"{system.ui}/namespaces/default/workflows/{execution['workflowId']}/{execution['runId']}"
        # Shot once the run has ended, so that every shot shows the same, final, story (the memo then has its summary).
        completed = f"WorkflowId = '{execution['workflowId']}' AND ExecutionStatus = 'Completed'"
        wait_for(
            lambda: json.loads(system.temporal("workflow", "list", "-q", completed, "-o", "json")),
            "the run to end",
        )
        chromium = HeadlessChromium(args.chromium, scratch / "chromium")
        try:
            chromium.shoot(
                f"{system.ui}/namespaces/default/workflows?query={query}",
                args.out / "observe-orderids-filter.png",
                ["1 COMPLETED", execution["workflowId"]],  # one run: the refusal was held and failed in it
            )
            chromium.shoot(
                f"{page}/user-metadata",
                args.out / "observe-failed-run.png",
                [
                    "Current Details",
                    "done: the run's time is up",
                    "held 1, failed 1 events",
                    f"of order {failed_order}",
                    failed["event_id"],
                    "events waiting",
                ],
                top="Summary",
            )
            chromium.shoot(
                f"{page}/memo",
                args.out / "observe-failed-run-memo.png",
                ["failed_events", failed["event_id"], "summary", "the run's time is up"],
            )
        finally:
            chromium.close()
        print(f"order {failed_order}, event {failed['event_id']}, run {execution['workflowId']}")
    finally:
        system.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
