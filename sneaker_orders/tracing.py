"""Tracing (OpenTelemetry), set up once per process, the API's or the worker's, from the standard OTEL_* variables.

Off by default, and then free: nothing is installed (no middleware, no interceptor, no span
processor) and `current_traceparent()` costs one read of a module global. On when the SDK is not
disabled (`OTEL_SDK_DISABLED=true` turns everything off) and an exporter is asked for:
`OTEL_TRACES_EXPORTER` = `otlp`, `console` or both (`otlp,console`), or, with `OTEL_TRACES_EXPORTER`
unset, an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). OTLP
goes over HTTP/protobuf. (The specification makes `otlp` the default exporter; here one must be asked
for, so that a process nobody collects from sends nothing.) The SDK reads every other standard
variable itself: `OTEL_SERVICE_NAME` (default `sneaker-orders-api` / `sneaker-orders-worker`),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
`..._TIMEOUT`, `..._COMPRESSION`.

What is traced, when on:
- the API: each request, as a SERVER span named by its route template; the span's context is stored
  with each outbox row the request writes (`order_events.traceparent`, W3C), in the same transaction;
- the worker: Temporal's `TracingInterceptor` on its client (workflow, StartActivity, RunActivity spans),
  and each delivery attempt as a CLIENT span, a child of the span that wrote the event and linked to
  the relay activity that made the attempt (`activities/delivery_tracing.py`); the platform receives
  that span as `traceparent`.
"""

import logging

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sneaker_orders.settings import Settings

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"
_PROPAGATOR = TraceContextTextMapPropagator()
# Set by configure_tracing when this process traces; None (off) is what every hot path checks.
_tracer: trace.Tracer | None = None
_provider = None  # the SDK's TracerProvider, flushed by shutdown_tracing


def requested_exporters(settings: Settings) -> tuple[str, ...]:
    """The span exporters the OTEL_* settings ask for; none: tracing is off. Raises ValueError for an unknown one."""
    if settings.otel_sdk_disabled:
        return ()
    if settings.otel_traces_exporter is not None:
        names = tuple(dict.fromkeys(name.strip().lower() for name in settings.otel_traces_exporter.split(",")))
        names = tuple(name for name in names if name and name != "none")
        unknown = [name for name in names if name not in EXPORTERS]
        if unknown:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} not supported (use otlp, console or none)")
        return names
    if settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint:
        return ("otlp",)
    return ()


def configure_tracing(settings: Settings, service_name: str) -> bool:
    """Install the tracer provider and exporters the settings ask for, as this process's global; whether tracing is on.

    Raises ValueError, saying what to change, for an exporter or OTLP protocol this build cannot use.
    """
    global _tracer, _provider
    exporters = requested_exporters(settings)
    if not exporters:
        return False
    protocol = settings.otel_exporter_otlp_traces_protocol or settings.otel_exporter_otlp_protocol or OTLP_PROTOCOL
    if "otlp" in exporters and protocol != OTLP_PROTOCOL:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol} not supported (use {OTLP_PROTOCOL})")

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER; shuts down (flushes) at exit
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider, _tracer = provider, provider.get_tracer("sneaker_orders")
    log.info("tracing on: %s exports spans of %s", " and ".join(exporters), resource.attributes[SERVICE_NAME])
    return True


def shutdown_tracing() -> None:
    """Export the spans still buffered (a process about to exit, even by os._exit); nothing when not tracing."""
    if _provider is not None:
        _provider.shutdown()


def tracing_is_on() -> bool:
    """Whether this process was configured to trace."""
    return _tracer is not None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with what this request writes; None when not tracing."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def start_span_under(
    traceparent: str | None, name: str, *, kind: trace.SpanKind, attributes: dict[str, str | int]
) -> trace.Span:
    """A span (not made current) whose parent is `traceparent`, linked to the current span; under the current
    span when `traceparent` is None or unreadable. Only while tracing is on."""
    assert _tracer is not None, "start_span_under is for a process that traces"
    current = trace.get_current_span().get_span_context()
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    if parent is None or not trace.get_current_span(parent).get_span_context().is_valid:
        return _tracer.start_span(name, kind=kind, attributes=attributes)
    links = [trace.Link(current)] if current.is_valid else []
    return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes, links=links)


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent naming `span` as the parent of what a receiver does."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


def instrument_api(app, settings: Settings) -> None:
    """Trace every request of the FastAPI `app` (but OTEL_PYTHON_FASTAPI_EXCLUDED_URLS), if tracing is on."""
    if _tracer is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=trace.get_tracer_provider(),
        excluded_urls=settings.otel_python_fastapi_excluded_urls,
        # The ASGI receive/send steps as spans of their own say nothing an operator needs.
        exclude_spans=["receive", "send"],
    )


def temporal_interceptors() -> list:
    """Temporal's TracingInterceptor for the worker's client (so its workers too), if tracing is on."""
    if _tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    # Schedules start the workflows: no client span is their parent, so create workflow spans anyway.
    return [TracingInterceptor(_tracer, always_create_workflow_spans=True)]
