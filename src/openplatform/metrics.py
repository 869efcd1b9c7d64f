"""Prometheus metrics (PROTOCOL §5): requests by route, API method and error
code; latency histograms.

With several worker processes each keeps its own registry unless
``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client's multiprocess mode),
in which case ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY", "REQUESTS", "observe", "render_metrics"]

REQUESTS = Counter(
    "openplatform_requests_total",
    "Requests served, by route, open-API method and error code.",
    ["route", "api_method", "error_code"],
)
LATENCY = Histogram(
    "openplatform_request_duration_seconds",
    "Time to answer a request, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}


def observe(route: str, api_method: str, error_code: str, seconds: float) -> None:
    """Count one request. The labelled children are looked up once per label
    set (``labels()`` costs more than the count itself; every API call counts)."""
    key = (route, api_method, error_code)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            REQUESTS.labels(route, api_method, error_code),
            LATENCY.labels(route),
        )
    children[0].inc()
    children[1].observe(seconds)


def render_metrics() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
