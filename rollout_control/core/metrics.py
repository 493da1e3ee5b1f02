"""Prometheus collectors owned by core. Named rollout_control_<domain>_<thing>_<unit>."""

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.registry import Collector

http_requests_total = Counter(
    "rollout_control_http_requests_total",
    "HTTP requests answered, by view and status code.",
    ["view", "method", "status"],
)
http_request_duration_seconds = Histogram(
    "rollout_control_http_request_duration_seconds",
    "Time to answer an HTTP request, by view.",
    ["view"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
auth_failures_total = Counter(
    "rollout_control_auth_failures_total",
    "Rejected API credentials and permission denials, by kind.",
    ["kind"],
)

# Collectors computed at scrape time (e.g. from the database). Registered by apps at start-up;
# /metrics adds them to the multiprocess registry too, where global registrations do not reach.
extra_collectors: list[Collector] = []


def register_collector(collector: Collector) -> None:
    extra_collectors.append(collector)
    REGISTRY.register(collector)
