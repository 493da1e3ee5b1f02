from typing import Any

from django.apps import AppConfig


def _count_task_run(sender: Any = None, state: str | None = None, **kwargs: Any) -> None:
    from monitoring import metrics

    name = getattr(sender, "name", "unknown")
    metrics.task_runs_total.labels(name, "success" if state == "SUCCESS" else "failure").inc()


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from celery.signals import task_postrun

        # Every task's outcome lands in /metrics without each task counting itself.
        task_postrun.connect(_count_task_run, weak=False, dispatch_uid="monitoring.task_runs")

        from monitoring.metrics import SchedulerCollector
        from rollout_control.core.metrics import register_collector

        register_collector(SchedulerCollector())

        from monitoring.stall import stall_check_from_poller
        from rollout_control.core.snapshots import store

        store.after_poll(stall_check_from_poller)
