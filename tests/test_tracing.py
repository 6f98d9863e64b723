"""One trace from an order to its delivery: the API's request span, the outbox row, the attempts, the platform.

The API and the worker run as the processes they are in production, tracing as the standard OTEL_*
variables tell them, and export with the real OTLP/HTTP exporter to the suite's own receiver.
"""

import httpx
import pytest

from api.app import create_app
from sneaker_orders.settings import Settings
from sneaker_orders.tracing import current_traceparent, requested_exporters
from tests.support.api_process import api_environment, api_process
from tests.support.ordering import placed
from tests.support.otlp_receiver import CLIENT, SERVER, STATUS_ERROR, serve_otlp_receiver
from tests.support.outbox_views import attempts_of, wait_for_statuses


@pytest.fixture
def otlp(background):
    with serve_otlp_receiver(background) as receiver:
        yield receiver


def tracing_to(receiver) -> dict[str, str]:
    """The standard variables that make a process trace to `receiver`, exporting every 100 ms."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def named_span(traceparent: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C traceparent (its flags aside)."""
    if traceparent is None:
        return None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


def test_an_order_its_outbox_row_and_its_delivery_attempts_are_one_trace(
    database_url, db, catalog, sink, relay, otlp, tmp_path
):
    relay.config.extra.update(tracing_to(otlp))
    sink.set_faults(fail_next=[503])  # the first attempt is retried: two attempts, two spans
    relay.start_worker()

    with api_process(api_environment(database_url, **tracing_to(otlp)), tmp_path / "api.log") as api:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            order = placed(client, (catalog.products["af1"], 1))
        [row] = wait_for_statuses(db, "SENT")

        # The API's span of POST /orders, and the outbox row written in its transaction names it.
        [http] = otlp.wait_for(lambda span: span.service == "sneaker-orders-api" and span.kind == SERVER)
    assert http.name == "POST /orders"
    assert http.attributes["http.route"] == "/orders"
    assert row["aggregate_id"] == str(order["order_id"])
    assert named_span(row["traceparent"]) == (http.trace_id, http.span_id)

    # Each attempt is a span of the worker, a child of the request's span: the same trace.
    event_id = str(row["event_id"])
    retried, sent = sorted(
        otlp.wait_for(
            lambda span: span.attributes.get("sneaker_orders.event_id") == event_id, count=2, what="two attempts"
        ),
        key=lambda span: span.attributes["sneaker_orders.attempt"],
    )
    for attempt in (retried, sent):
        assert attempt.service == "sneaker-orders-worker"
        assert attempt.name == "deliver OrderCreated"
        assert attempt.kind == CLIENT
        assert (attempt.trace_id, attempt.parent_span_id) == (http.trace_id, http.span_id)
        assert attempt.attributes["sneaker_orders.order_id"] == str(order["order_id"])
    assert (retried.attributes["sneaker_orders.outcome"], retried.attributes["http.response.status_code"]) == (
        "RETRY",
        503,
    )
    assert retried.status_code == STATUS_ERROR
    assert (sent.attributes["sneaker_orders.outcome"], sent.attributes["http.response.status_code"]) == ("SENT", 201)

    # The platform was sent the attempt's own span as the parent of whatever it does.
    [received] = sink.received()
    assert named_span(received["traceparent"]) == (sent.trace_id, sent.span_id)

    # Each attempt is linked to the relay activity that made it, whose span Temporal's TracingInterceptor
    # made a child of the workflow's StartActivity span, both naming the run that delivery_attempts names.
    attempts = attempts_of(db, row["event_id"])
    assert [attempt["outcome"] for attempt in attempts] == ["RETRY", "SENT"]
    for attempt_span, logged in zip((retried, sent), attempts, strict=True):
        [(linked_trace, linked_span)] = attempt_span.links
        activity = otlp.span(linked_span)
        assert activity.name == "RunActivity:relay_due_events"
        assert activity.trace_id == linked_trace != http.trace_id
        assert activity.attributes["temporalRunID"] == logged["run_id"] == attempt_span.attributes["temporalRunID"]
        assert activity.attributes["temporalWorkflowID"] == logged["workflow_id"]
        scheduled = otlp.span(activity.parent_span_id)
        assert scheduled.name == "StartActivity:relay_due_events"
        assert scheduled.trace_id == activity.trace_id
        assert scheduled.attributes["temporalRunID"] == logged["run_id"]
    # and the run that delivered it has its workflow span.
    otlp.wait_for(
        lambda span: (
            span.name == "RunWorkflow:OrderEventsRelay" and span.attributes["temporalRunID"] == attempts[-1]["run_id"]
        ),
        what="the delivering run's workflow span",
    )


def test_without_tracing_no_traceparent_is_stored_or_sent(api, db, catalog, sink, relay):
    relay.start_worker()

    placed(api, (catalog.products["af1"], 1))
    [row] = wait_for_statuses(db, "SENT")

    assert row["traceparent"] is None
    [received] = sink.received()
    assert received["traceparent"] is None


@pytest.mark.parametrize(
    ("variables", "exporters"),
    [
        ({}, ()),
        ({"otel_exporter_otlp_endpoint": "http://collector:4318"}, ("otlp",)),
        ({"otel_exporter_otlp_traces_endpoint": "http://collector:4318/v1/traces"}, ("otlp",)),
        ({"otel_traces_exporter": "console"}, ("console",)),
        ({"otel_traces_exporter": "otlp, console"}, ("otlp", "console")),
        ({"otel_traces_exporter": "none", "otel_exporter_otlp_endpoint": "http://collector:4318"}, ()),
        ({"otel_sdk_disabled": True, "otel_traces_exporter": "otlp"}, ()),
    ],
)
def test_tracing_is_on_only_when_the_standard_variables_ask_for_an_exporter(variables, exporters):
    assert requested_exporters(Settings(**variables)) == exporters


def test_an_exporter_this_build_cannot_use_is_refused_by_name():
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER: zipkin not supported"):
        requested_exporters(Settings(otel_traces_exporter="zipkin"))


def test_without_tracing_the_api_gets_no_tracing_middleware(settings):
    app = create_app(settings)

    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    modules = {layer.cls.__module__ for layer in app.user_middleware}
    assert modules == {"api.app", "api.direct_route"}, modules
    assert current_traceparent() is None
