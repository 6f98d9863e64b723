"""The worker's one metrics endpoint: what the relay did, and the Temporal SDK's own task latencies."""

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.support.outbox_views import insert_pending_events, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.prometheus_text import sample


def test_deliveries_move_the_attempt_counter_and_the_latency_histogram(db, catalog, sink, relay):
    sink.set_faults(fail_next=[503])
    worker = relay.start_worker()
    assert re.search(r"worker metrics on http://127\.0\.0\.1:(\d+)/metrics", worker.output()).group(1) != "9464"
    before = worker.metrics()
    assert (
        sample(
            before, "sneaker_orders_relay_attempts_total", destination="platform", outcome="SENT", status_class="2xx"
        )
        is None
    )

    insert_pending_events(db, ["1", "2", "3"])
    wait_for_statuses(db, "SENT")

    def counted_three_sent() -> str | None:
        text = worker.metrics()
        sent = sample(
            text, "sneaker_orders_relay_attempts_total", destination="platform", outcome="SENT", status_class="2xx"
        )
        return text if sent == 3 else None

    after = wait_until(counted_three_sent, what="three SENT attempts counted")
    assert (
        sample(
            after, "sneaker_orders_relay_attempts_total", destination="platform", outcome="RETRY", status_class="5xx"
        )
        == 1
    )
    assert sample(after, "sneaker_orders_relay_commit_to_ack_seconds_count", destination="platform") == 3
    assert sample(after, "sneaker_orders_relay_deliveries_in_flight", destination="platform") == 0
    assert sample(after, "sneaker_orders_relay_claims_given_back_total", destination="platform") == 0
    assert sample(after, "sneaker_orders_relay_leases_expired_total", destination="platform") == 0
    assert sample(after, "sneaker_orders_relay_breaker_open", destination="platform") == 0


def test_the_temporal_sdk_metrics_share_the_endpoint_in_valid_prometheus_text(db, catalog, sink, relay):
    worker = relay.start_worker()
    insert_pending_events(db, ["1"])
    wait_for_statuses(db, "SENT")

    metrics = worker.metrics()

    families = {family.name for family in text_string_to_metric_families(metrics)}  # parses, or raises
    for latency in (
        "temporal_workflow_task_schedule_to_start_latency",
        "temporal_workflow_task_execution_latency",
        "temporal_activity_schedule_to_start_latency",
    ):
        assert latency in families
        assert sample(metrics, f"{latency}_count", task_queue=relay.config.task_queue) >= 1
