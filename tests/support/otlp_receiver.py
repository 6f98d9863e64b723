"""An OTLP/HTTP trace receiver of the suite's own, on loopback: what the processes under test export, decoded.

The API and the worker run as processes of their own, exporting with the real OTLP/HTTP exporter
(configured by OTEL_EXPORTER_OTLP_ENDPOINT); this receiver decodes each export request with
opentelemetry-proto, as a collector would.
"""

import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.background_loop import BackgroundLoop
from tests.support.polling import wait_until

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in lowercase hex, as a W3C traceparent spells them."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each linked span
    status_code: int


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _decode(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name")),
                        name=span.name,
                        kind=span.kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        attributes={item.key: _value(item.value) for item in span.attributes},
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        status_code=span.status.code,
                    )
                )
    return spans


class OtlpReceiver:
    """The spans received so far, and a way to wait for the ones a test expects."""

    def __init__(self) -> None:
        self.url = ""
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, matching: Callable[[ReceivedSpan], bool], *, count: int = 1, timeout: float = 30, what: str = "spans"
    ) -> list[ReceivedSpan]:
        """Wait until at least `count` received spans match; return those that do."""

        def arrived() -> list[ReceivedSpan] | None:
            found = [span for span in self.spans if matching(span)]
            return found if len(found) >= count else None

        return wait_until(arrived, timeout=timeout, what=what)

    def span(self, span_id: str) -> ReceivedSpan:
        """The received span with this id."""
        return self.wait_for(lambda span: span.span_id == span_id, what=f"span {span_id}")[0]

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        with self._lock:
            self._spans.extend(_decode(export))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )


@contextmanager
def serve_otlp_receiver(background: BackgroundLoop) -> Iterator[OtlpReceiver]:
    """Receive OTLP/HTTP traces (`POST /v1/traces`) on a free loopback port; `receiver.url` is the endpoint's base."""
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver._export)
    runner = web.AppRunner(app, access_log=None)
    background.run(runner.setup())
    background.run(web.TCPSite(runner, "127.0.0.1", 0).start())
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        background.run(runner.cleanup())
