from django.db import models
from django.utils import timezone


class Heartbeat(models.Model):
    """When a scheduler component (beat, worker) last ran. One row per component."""

    class Component(models.TextChoices):
        BEAT = "beat"
        WORKER = "worker"

    component = models.CharField(max_length=20, choices=Component.choices, unique=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    stall_alerted = models.BooleanField(default=False, help_text="A stall alert is out for it.")

    def __str__(self) -> str:
        return f"{self.component} last seen {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


_METRIC_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$"


class MetricSample(models.Model):
    """One pushed measurement. The common labels have their own columns so that window queries
    ("errors for flag X in the last 15 minutes") are index range scans."""

    metric = models.CharField(max_length=100)
    value = models.FloatField()
    recorded_at = models.DateTimeField()
    flag = models.CharField(max_length=100, blank=True, default="")
    plan = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(max_length=100, blank=True, default="")
    cohort = models.CharField(max_length=100, blank=True, default="")
    unit = models.CharField(max_length=200, blank=True, default="")
    labels = models.JSONField(default=dict, blank=True, help_text="Every label as sent.")

    class Meta:
        # Every index costs ingestion about 5.5 ms of database time per 1,000 samples (a sixth of
        # a batch; docs/benchmarks.md). The flag one serves the gates' per-flag windows; other
        # label filters (plan, phase, cohort) ride on metric + time: rows arrive in time order, so
        # that reads the same heap pages a label index would (2.0 ms against 1.6 ms for plan).
        indexes = [
            models.Index(fields=["metric", "recorded_at"], name="sample_metric_time_idx"),
            models.Index(
                fields=["metric", "flag", "recorded_at"], name="sample_metric_flag_time_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class MetricRollup(models.Model):
    """Hourly aggregate of samples, kept after the raw samples are pruned."""

    metric = models.CharField(max_length=100)
    bucket_start = models.DateTimeField()
    flag = models.CharField(max_length=100, blank=True, default="")
    plan = models.CharField(max_length=100, blank=True, default="")
    phase = models.CharField(max_length=100, blank=True, default="")
    cohort = models.CharField(max_length=100, blank=True, default="")
    count = models.BigIntegerField()
    total = models.FloatField()
    minimum = models.FloatField()
    maximum = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "bucket_start", "flag", "plan", "phase", "cohort"],
                name="rollup_unique",
            )
        ]
        indexes = [models.Index(fields=["metric", "bucket_start"], name="rollup_metric_time_idx")]

    def __str__(self) -> str:
        return f"{self.metric} {self.bucket_start:%Y-%m-%d %H:00} n={self.count}"


class UsageEvent(models.Model):
    """A unit doing something with a flag's feature: `exposure`, `use`, or a custom action.

    Stored once per unit, flag, action and UTC day (the first one; repeats are accepted and
    dropped), so a flood of events from a public client token cannot inflate adoption."""

    unit = models.CharField(max_length=200)
    flag = models.CharField(max_length=100)
    action = models.CharField(max_length=50)
    occurred_at = models.DateTimeField()
    day = models.DateField(help_text="The UTC date of occurred_at: the dedupe key's day.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "action", "unit", "day"], name="event_once_per_unit_day"
            )
        ]
        indexes = [
            models.Index(
                fields=["flag", "action", "occurred_at"], name="event_flag_action_time_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.action} {self.flag}"


class MetricDefinition(models.Model):
    """A named metric that gates and guardrails read over a window."""

    class Aggregation(models.TextChoices):
        COUNT = "count", "Number of samples"
        SUM = "sum", "Sum of values"
        RATE = "rate", "Sum of values per minute"
        MEAN = "mean", "Mean value"
        P50 = "p50", "Median"
        P95 = "p95", "95th percentile"
        P99 = "p99", "99th percentile"
        RATIO = "ratio", "Sum of metric / sum of denominator metric"
        ADOPTION = "adoption", "Share of exposed units that also used the feature"
        VALUE = "value", "The provider's own value (Prometheus, feedback)"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=50, default="samples", help_text="A registered provider.")
    aggregation = models.CharField(max_length=10, choices=Aggregation.choices)
    metric = models.CharField(
        max_length=100, blank=True, help_text="Sample metric (or provider key)."
    )
    denominator = models.CharField(max_length=100, blank=True, help_text="For ratio.")
    query = models.TextField(blank=True, help_text="PromQL for the prometheus source.")
    filter_labels = models.JSONField(
        default=list, blank=True, help_text='Labels a query may filter on, e.g. ["flag", "plan"].'
    )
    min_samples = models.PositiveIntegerField(default=1)
    unit = models.CharField(max_length=20, blank=True, help_text="%, ms, /5 …")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(name__regex=_METRIC_NAME), name="metric_definition_name"
            )
        ]

    def __str__(self) -> str:
        return self.name
