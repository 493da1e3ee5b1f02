"""Prometheus collectors for feedback, named rollout_control_feedback_<thing>_<unit>."""

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

items_total = Counter(
    "rollout_control_feedback_items_total",
    "Feedback items received, by type and derived priority.",
    ["type", "priority"],
)
rate_limited_total = Counter(
    "rollout_control_feedback_rate_limited_total",
    "Feedback submissions refused with 429 (per-unit rate limit).",
)
overdue_total = Counter(
    "rollout_control_feedback_overdue_total",
    "Feedback items that passed their response time unanswered.",
)

_OPEN = "rollout_control_feedback_open_items"
_OVERDUE = "rollout_control_feedback_overdue_items"


class QueueCollector(Collector):
    """Scrape-time size of the support queue: open items by priority, and how many are past
    their response time unanswered (alert on it)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe(), registering would call collect() and query the database at import.
        yield GaugeMetricFamily(_OPEN, "", labels=["priority"])
        yield GaugeMetricFamily(_OVERDUE, "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from feedback.selectors import queue_counts

        try:
            counts = queue_counts()
        except Exception:  # database down: /metrics must still answer
            return
        open_items = GaugeMetricFamily(
            _OPEN, "Open feedback items (new, triaged, in progress).", labels=["priority"]
        )
        for priority, count in counts.open_by_priority.items():
            open_items.add_metric([priority], count)
        yield open_items
        yield GaugeMetricFamily(
            _OVERDUE, "Open items past their response time, unanswered.", value=counts.overdue
        )
