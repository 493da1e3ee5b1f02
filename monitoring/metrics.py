from prometheus_client import Counter, Gauge

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
