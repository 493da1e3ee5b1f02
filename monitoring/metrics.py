from collections.abc import Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

scheduler_heartbeat_timestamp_seconds = Gauge(
    "rollout_control_scheduler_heartbeat_timestamp_seconds",
    "Unix time at which a scheduler component (beat, worker) last ran.",
    ["component"],
    multiprocess_mode="max",
)
task_runs_total = Counter(
    "rollout_control_task_runs_total",
    "Celery task runs, by task and outcome.",
    ["task", "outcome"],
)
ingested_total = Counter(
    "rollout_control_ingest_items_total",
    "Metric samples and usage events stored, by kind.",
    ["kind"],
)
rejected_batches_total = Counter(
    "rollout_control_ingest_rejected_batches_total",
    "Batches refused (nothing stored), by kind.",
    ["kind"],
)


class SchedulerCollector(Collector):
    """Scrape-time view of the heartbeats: age per component and whether it has stalled
    (no tick for more than two intervals), for alerting on a dead beat or worker."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe(), registering would call collect() and query the database at import.
        yield GaugeMetricFamily(
            "rollout_control_scheduler_seconds_since_heartbeat", "", labels=["component"]
        )
        yield GaugeMetricFamily("rollout_control_scheduler_stalled", "", labels=["component"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.utils import timezone

        from monitoring.selectors import scheduler_status

        age = GaugeMetricFamily(
            "rollout_control_scheduler_seconds_since_heartbeat",
            "Seconds since the component last recorded a heartbeat (-1: never).",
            labels=["component"],
        )
        stalled = GaugeMetricFamily(
            "rollout_control_scheduler_stalled",
            "1 when the component has not ticked for more than two intervals.",
            labels=["component"],
        )
        try:
            statuses = scheduler_status()
        except Exception:  # database down: /metrics must still answer
            return
        now = timezone.now()
        for status in statuses:
            seconds = (now - status.last_seen_at).total_seconds() if status.last_seen_at else -1
            age.add_metric([status.component], seconds)
            stalled.add_metric([status.component], 1.0 if status.stalled else 0.0)
        yield age
        yield stalled
