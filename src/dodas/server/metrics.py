"""Prometheus metrics of the server: requests and their durations by route,
deployments by state, and the depth of the work queue (read at scrape time)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry()
REQUESTS = Counter("dodas_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
DURATION = Histogram("dodas_request_duration_seconds", "HTTP request durations", ["route"], registry=REGISTRY,
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(route).observe(seconds)


class _StateCollector:
    """Read from the database when scraped, so every server process reports the same."""

    def collect(self):  # prometheus_client's collector protocol
        from dodas.server import operations

        by_state = GaugeMetricFamily("dodas_deployments", "Deployments by state", labels=["status"])
        for status, n in sorted(operations.deployment_counts().items()):
            by_state.add_metric([status], n)
        yield by_state
        depth = GaugeMetricFamily("dodas_work_queue_depth", "Operations waiting for a worker")
        depth.add_metric([], operations.queue_depth())
        yield depth


REGISTRY.register(_StateCollector())


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
