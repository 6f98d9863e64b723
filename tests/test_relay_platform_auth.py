"""Deliveries prove they are ours (bearer token, Standard Webhooks signature), and no credential reaches a log."""

import base64
import json

import pytest

from devstack.sink.verification import DeliveryCheck
from tests.support.outbox_views import attempts_of, event_rows, insert_pending_events, wait_for_statuses
from tests.support.polling import wait_until
from tests.support.sink_control import Sink, serve_sink

TOKEN = "platform-token-that-must-stay-secret"
SECRET = "whsec_" + base64.b64encode(b"signing-key-that-must-stay-secret").decode()
URL_PASSWORD = "url-password-that-must-stay-secret"


@pytest.fixture
def signed_sink(background):
    """A demo platform that accepts only deliveries with TOKEN and signed with SECRET."""
    with serve_sink(background, DeliveryCheck(token=TOKEN, signing_secret=SECRET)) as url:
        yield Sink(url)


def test_signed_deliveries_verify_at_the_platform(db, catalog, relay, signed_sink):
    relay.config.extra.update(
        {"EXTERNAL_PLATFORM_URL": signed_sink.url, "PLATFORM_TOKEN": TOKEN, "PLATFORM_SIGNING_SECRET": SECRET}
    )
    event_ids = insert_pending_events(db, ["1", "2"])
    relay.start_worker()

    wait_for_statuses(db, "SENT")

    received = signed_sink.received()
    assert {event["key"] for event in received} == set(event_ids)
    assert all(event["signature_verified"] and event["schema_version"] == 1 for event in received)
    assert signed_sink.stats()["refused"] == 0


@pytest.mark.heavy  # a bar on speed under load: at most two such tests at once (tests/support/scheduling.py)
@pytest.mark.flaky(reruns=2)  # a latency bar two xdist workers on two cores can miss: re-run, never loosened
def test_a_wrong_signing_secret_is_refused_by_the_platform_and_held_as_the_platforms_trouble(
    db, catalog, relay, signed_sink
):
    wrong = "whsec_" + base64.b64encode(b"not the platform's key").decode()
    relay.config.extra.update(
        {"EXTERNAL_PLATFORM_URL": signed_sink.url, "PLATFORM_TOKEN": TOKEN, "PLATFORM_SIGNING_SECRET": wrong}
    )
    event_ids = insert_pending_events(db, ["1", "2", "3"])
    relay.start_worker()

    # Every event gets the same 401: the platform refuses us, not the events; none is FAILED, each keeps its budget.
    wait_until(
        lambda: all(len(attempts_of(db, event_id)) >= 2 for event_id in event_ids), what="each event to be refused"
    )
    attempts = [attempt for event_id in event_ids for attempt in attempts_of(db, event_id)]
    assert {(attempt["outcome"], attempt["http_status"]) for attempt in attempts} == {("HELD", 401)}
    assert all("bad signature" in attempt["error"] for attempt in attempts)
    assert {(row["status"], row["retry_count"]) for row in event_rows(db)} <= {("PENDING", 0), ("PROCESSING", 0)}


def test_no_credential_appears_in_the_logs_and_urls_are_logged_without_userinfo(db, catalog, sink, relay):
    with_userinfo = sink.url.replace("http://", f"http://relay:{URL_PASSWORD}@")
    relay.config.extra.update(
        {
            "EXTERNAL_PLATFORM_URL": with_userinfo,
            "PLATFORM_TOKEN": TOKEN,
            "PLATFORM_SIGNING_SECRET": SECRET,
            "LOG_FORMAT": "json",
        }
    )
    sink.set_faults(fail_next=[503])
    insert_pending_events(db, ["1"])
    worker = relay.start_worker()
    wait_for_statuses(db, "SENT")
    worker.stop()

    log = worker.output()
    for secret in (TOKEN, SECRET, SECRET.removeprefix("whsec_"), URL_PASSWORD, with_userinfo):
        assert secret not in log
    assert f"relaying to platform ({sink.url}) " in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    attempts = [line for line in lines if line["logger"] == "sneaker_orders.attempts"]
    assert [(line["outcome"], line["http_status"], line["attempt"]) for line in attempts] == [
        ("RETRY", 503, 1),
        ("SENT", 201, 2),
    ]
    fields = {
        "destination",
        "event_id",
        "order_id",
        "sequence",
        "attempt",
        "outcome",
        "http_status",
        "workflow_id",
        "run_id",
    }
    assert all(fields <= set(line) and line["order_id"] == "1" for line in attempts)
