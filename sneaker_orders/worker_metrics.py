"""The worker's one Prometheus endpoint (127.0.0.1:WORKER_METRICS_PORT): relay metrics and the Temporal SDK's own.

The SDK records its metrics (workflow and activity task latencies, schedule-to-start, polls,
failures...) into a `MetricBuffer` instead of serving them on a port of its own; this module
drains the buffer every second and shows the totals next to ours, so one scrape sees both.
"""

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

log = logging.getLogger(__name__)

BUFFER_SIZE = 100_000
DRAIN_EVERY_SECONDS = 1.0
# The SDK's histograms are durations, in seconds here.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_UNSAFE = re.compile(r"[^a-zA-Z0-9_:]")


@dataclass
class _Series:
    """One metric with one set of attributes: a counter's total, a gauge's value, or a histogram."""

    value: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0


class TemporalSdkMetrics(Collector):
    """The SDK's buffered metric updates, summed into series that Prometheus can scrape."""

    def __init__(self, buffer: MetricBuffer) -> None:
        self._buffer = buffer
        self._kinds: dict[str, tuple[int, str]] = {}
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = {}

    def drain(self) -> None:
        """Take every update the SDK buffered since the last drain."""
        for update in self._buffer.retrieve_updates():
            name = _UNSAFE.sub("_", update.metric.name)
            self._kinds.setdefault(name, (update.metric.kind, update.metric.description or name))
            labels = tuple(sorted((key, str(value)) for key, value in update.attributes.items()))
            series = self._series.setdefault((name, labels), _Series())
            kind = update.metric.kind
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                series.value += update.value
            elif kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                series.value += update.value
                series.count += 1
                for index, bound in enumerate(LATENCY_BUCKETS):
                    if update.value <= bound:
                        series.buckets[index] += 1
            else:
                series.value = update.value

    def collect(self) -> Iterator[Metric]:
        self.drain()
        families: dict[str, Metric] = {}
        for (name, labels), series in sorted(self._series.items()):
            kind, description = self._kinds[name]
            base = name.removesuffix("_total")
            prometheus_type = {BUFFERED_METRIC_KIND_COUNTER: "counter", BUFFERED_METRIC_KIND_HISTOGRAM: "histogram"}
            family = families.setdefault(base, Metric(base, description, prometheus_type.get(kind, "gauge")))
            label_map = dict(labels)
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                family.add_sample(f"{base}_total", label_map, series.value)
            elif kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                # Each observation was counted in every bucket it fits: the counts are already cumulative.
                for bound, observed in zip(LATENCY_BUCKETS, series.buckets, strict=True):
                    family.add_sample(f"{base}_bucket", {**label_map, "le": str(bound)}, observed)
                family.add_sample(f"{base}_bucket", {**label_map, "le": "+Inf"}, series.count)
                family.add_sample(f"{base}_count", label_map, series.count)
                family.add_sample(f"{base}_sum", label_map, series.value)
            else:
                family.add_sample(base, label_map, series.value)
        yield from families.values()


def temporal_runtime() -> tuple[Runtime, TemporalSdkMetrics]:
    """A Temporal runtime whose SDK metrics land in a buffer, and the collector that exposes them."""
    buffer = MetricBuffer(BUFFER_SIZE, duration_format=MetricBufferDurationFormat.SECONDS)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    return runtime, TemporalSdkMetrics(buffer)


@asynccontextmanager
async def serve_worker_metrics(port: int, sdk_metrics: TemporalSdkMetrics) -> AsyncIterator[int]:
    """Serve `/metrics` on 127.0.0.1:`port` (0: any free port) while inside; yields the port."""
    REGISTRY.register(sdk_metrics)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    drain = asyncio.create_task(_drain_forever(sdk_metrics))
    log.info("worker metrics on http://127.0.0.1:%d/metrics", bound)
    try:
        yield bound
    finally:
        drain.cancel()
        await runner.cleanup()
        REGISTRY.unregister(sdk_metrics)


async def _drain_forever(sdk_metrics: TemporalSdkMetrics) -> None:
    """Keep the SDK's buffer from filling up between scrapes."""
    while True:
        await asyncio.sleep(DRAIN_EVERY_SECONDS)
        sdk_metrics.drain()
