"""The Grafana dashboard and the Prometheus alert rules under deploy/ name only metrics the API and the worker export.

Both real endpoints are scraped after real traffic (orders placed, a retry and a FAILED delivery),
so labelled series exist; histogram and counter suffixes (`_bucket`, `_count`, `_sum`, `_total`) are
the samples' own names. promtool is not at hand here: the rule file's YAML structure is checked instead.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.ordering import placed
from tests.support.outbox_views import platform_accepts_others, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.prometheus_text import exported_names

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "sneaker-orders.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPES = DEPLOY / "prometheus" / "prometheus.yml"
# Made by Prometheus itself for every target, not by the processes.
PROMETHEUS_OWN = {"up"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
DURATION = re.compile(r"^\d+[smhdw]$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords, labels or durations)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", "", expr)  # numbers
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        is_function = expr[match.end() :].lstrip().startswith("(")
        if not is_function and match.group(0) not in PROMQL_KEYWORDS:
            names.add(match.group(0))
    return names


def test_metric_names_are_read_from_promql():
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{route="/o", a=~"b|c"}[5m]))) > 1e3'
        " unless on() max(y_open) == 1 and (sum(increase(z_count[10m])) or on() vector(0)) == 0"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_open", "z_count"}


def dashboard_queries() -> list[str]:
    def panels(items: list[dict]):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in panels(dashboard["panels"]) for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_alert_rules_file_has_the_structure_prometheus_loads():
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names))
    alerts = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
            assert isinstance(rule["expr"], str) and metric_names(rule["expr"]), rule
            assert _balanced(rule["expr"]), rule["expr"]
            assert DURATION.match(rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts))
    # What issue 9 asks the rules to catch.
    for wanted in ("OutboxLagHigh", "OutboxEventsFailed", "RelayNotRunning", "PlatformBreakerOpen"):
        assert wanted in alerts


def test_the_rules_name_the_jobs_prometheus_scrapes():
    jobs = {config["job_name"] for config in yaml.safe_load(SCRAPES.read_text())["scrape_configs"]}
    named = {job for rule in alert_rules() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert named and named <= jobs
    assert yaml.safe_load(SCRAPES.read_text())["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_loads_the_rules_and_each_alert_names_its_destination():
    # deploy/prometheus/alerts_test.yml: a FAILED delivery and an open breaker at one destination, a due
    # delivery at another; each alert fires for its own destination only.
    for arguments in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS.with_name("alerts_test.yml"))]):
        finished = subprocess.run(["promtool", *arguments], capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stdout + finished.stderr


def test_the_dashboards_outbox_and_relay_queries_are_per_destination():
    for expr in dashboard_queries():
        if "sneaker_orders_outbox_events" in expr or "sneaker_orders_relay_" in expr or "outbox_lag" in expr:
            assert "destination" in expr and "$destination" in expr, expr


def _balanced(expr: str) -> bool:
    depth = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for character in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if character in "([{":
            depth.append(character)
        elif character in pairs and (not depth or depth.pop() != pairs[character]):
            return False
    return not depth


@pytest.fixture
def exported(api, db, catalog, sink, relay) -> set[str]:
    """Every metric name the API and a worker export after orders, a retried and a FAILED delivery."""
    sink.set_faults(fail_next=[503, 400])
    platform_accepts_others(db)  # the 4xx is the event's own, FAILED at once
    worker = relay.start_worker()
    for _ in range(3):
        placed(api, (catalog.products["af1"], 1))
    api.post("/orders", json={"items": []})  # a problem response
    wait_for_statuses(db, "SENT", "FAILED")

    def after_a_relay_activity_ended() -> str | None:
        text = worker.metrics()
        return text if 'activity_type="relay_due_events"' in text else None

    worker_metrics = wait_until(after_a_relay_activity_ended, timeout=30, what="a relay activity to end")
    return exported_names(api.get("/metrics").text) | exported_names(worker_metrics)


def test_the_dashboard_and_the_alert_rules_name_only_exported_metrics(exported):
    queries = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
    named = set().union(*(metric_names(query) for query in queries))

    assert named - exported - PROMETHEUS_OWN == set()
    # The dashboard covers the outbox, the relay and the orders.
    dashboard_names = set().union(*(metric_names(query) for query in dashboard_queries()))
    for wanted in (
        "sneaker_orders_outbox_lag_seconds",
        "sneaker_orders_outbox_events",
        "sneaker_orders_relay_attempts_total",
        "sneaker_orders_relay_commit_to_ack_seconds_bucket",
        "sneaker_orders_relay_breaker_open",
        "sneaker_orders_orders_placed_total",
        "sneaker_orders_problems_total",
        "sneaker_orders_http_request_duration_seconds_bucket",
    ):
        assert wanted in dashboard_names
