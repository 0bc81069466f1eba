"""Prometheus metrics of one app: requests, latency, batch sizes, queue depth, errors, history.

Each app owns its own `CollectorRegistry` (no process-wide state), rendered
as Prometheus text by `/metrics`.  Paths are labelled by their route
template, never the raw URL, so a scan of random URLs cannot grow the label
set without bound.  The history store's queue is read when /metrics is
rendered (`watch_store`): `recog_history_queued` (rows waiting),
`recog_history_written_total`, `recog_history_dropped_total{reason}`
(`queue_full`: the database was down too long; `rejected`: the database
refused the row) and `recog_history_degraded` (1 while the database does
not answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recog.serve.camera import CameraMetrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # every metric of the app in its registry: named here once
        counter, histogram, gauge = (
            partial(kind, registry=self.registry) for kind in (Counter, Histogram, Gauge)
        )
        self.requests = counter(
            "recog_http_requests", "HTTP requests answered", ["method", "route", "status"]
        )
        self.latency = histogram(
            "recog_http_request_duration_seconds", "time from request to response",
            ["method", "route"], buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.errors = counter(
            "recog_errors", "error answers by code (4xx and 5xx)", ["route", "error"]
        )
        self.camera = CameraMetrics(self.registry)
        self.predictions = counter("recog_predictions", "images predicted", ["model"])
        self.batch_size = histogram(
            "recog_batch_size", "images per forward pass", ["model"], buckets=_BATCH_BUCKETS
        )
        self.inference = histogram(
            "recog_inference_seconds", "time of one batched forward pass with post-processing",
            ["model"], buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.queue_depth = gauge("recog_queue_depth", "requests waiting for a model", ["model"])

    def batch_observer(self, model: str) -> Callable[[int, float], None]:
        batch, inference, predictions = (
            self.batch_size.labels(model),
            self.inference.labels(model),
            self.predictions.labels(model),
        )

        def observe(size: int, seconds: float) -> None:
            batch.observe(size)
            inference.observe(seconds)
            predictions.inc(size)

        return observe

    def watch_store(self, store: Any) -> None:
        """Export `store`'s history queue (a `recog.serve.store.Store`) with these metrics."""
        self.registry.register(_HistoryCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _HistoryCollector(Collector):
    """The history writer's counts, read at scrape time (the writer owns them)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        writer = self.store.writer
        yield GaugeMetricFamily(
            "recog_history_queued", "history rows waiting to be written", value=writer.queued()
        )
        yield GaugeMetricFamily(
            "recog_history_degraded",
            "1 while the history database does not answer",
            value=float(writer.failure is not None),
        )
        yield CounterMetricFamily(
            "recog_history_written", "history rows written to the database", value=writer.written
        )
        dropped = CounterMetricFamily(
            "recog_history_dropped",
            "history rows lost: queue_full (the database was down too long), rejected",
            labels=["reason"],
        )
        for reason, count in sorted(writer.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
