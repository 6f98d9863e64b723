"""Delivery attempts as spans: each a child of the span that wrote its event, linked to the relay activity making it.

So one trace holds an order's HTTP request and every attempt to deliver its events, and each attempt
leads (by its link) to the Temporal run and activity that made it. The platform receives the
attempt's span as `traceparent`. Used only while the worker traces (sneaker_orders/tracing.py).
"""

from datetime import timedelta

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from activities.platform import AttemptFacts
from db.outbox.claims import LeasedEvent
from db.outbox.outcomes import Run
from sneaker_orders.tracing import start_span_under, traceparent_of


class DeliverySpans:
    """Starts an attempt's span before its request and ends it once the attempt's outcome is recorded."""

    def __init__(self, events_url: str) -> None:
        self._events_url = events_url

    def start(self, event: LeasedEvent) -> tuple[Span, str | None]:
        """The span of this attempt at `event`, and the traceparent the platform is sent."""
        span = start_span_under(
            event.traceparent,
            f"deliver {event.event_type}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "url.full": self._events_url,
                "sneaker_orders.event_id": event.event_id,
                "sneaker_orders.event_type": event.event_type,
                "sneaker_orders.order_id": event.aggregate_id,
                "sneaker_orders.sequence": event.sequence,
                "sneaker_orders.attempt": event.attempt,
            },
        )
        return span, traceparent_of(span)

    @staticmethod
    def finish(span: Span, fact: AttemptFacts, outcome: str, error: str | None, run: Run) -> None:
        """End the span as the attempt ended: its outcome, the platform's status, the run that recorded it."""
        if fact.http_status is not None:
            span.set_attribute("http.response.status_code", fact.http_status)
        span.set_attribute("sneaker_orders.outcome", outcome)
        span.set_attribute("temporalWorkflowID", run.workflow_id)
        span.set_attribute("temporalRunID", run.run_id)
        if outcome != "SENT":
            span.set_status(Status(StatusCode.ERROR, f"{outcome}: {error}" if error else outcome))
        answered_at = fact.attempted_at + timedelta(milliseconds=fact.duration_ms)
        span.end(end_time=int(answered_at.timestamp() * 1e9))

    @staticmethod
    def abandon(span: Span, why: str) -> None:
        """End the span of an attempt whose outcome was not recorded (paused, shut down)."""
        span.set_attribute("sneaker_orders.outcome", "NOT_RECORDED")
        span.set_status(Status(StatusCode.ERROR, why))
        span.end()
