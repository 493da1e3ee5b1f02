"""Writes for monitoring: ingestion (all or nothing per batch), heartbeats, compaction.

Samples and events are telemetry, not configuration: they are counted in /metrics rather than
written to the audit log one by one.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from monitoring import metrics
from monitoring.exceptions import InvalidBatch
from monitoring.models import Heartbeat, MetricRollup, MetricSample, UsageEvent
from monitoring.providers import LABEL_COLUMNS, clamped

MAX_FUTURE = timedelta(minutes=5)
MAX_LABELS = 20
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")
LABEL_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")
SAMPLE_KEYS = frozenset({"metric", "value", "timestamp", "labels"})
EVENT_KEYS = frozenset({"unit", "flag", "action", "timestamp"})


def heartbeat_record(*, component: str) -> Heartbeat:
    """Notes that a scheduler component is alive. Not audited: it is telemetry, not a change."""
    now = timezone.now()
    heartbeat, _ = Heartbeat.objects.update_or_create(
        component=component, defaults={"last_seen_at": now}
    )
    metrics.scheduler_heartbeat_timestamp_seconds.labels(component).set(now.timestamp())
    return heartbeat


@dataclass(frozen=True, slots=True)
class _Window:
    """The times a batch accepts, worked out once per batch rather than once per item."""

    now: datetime
    earliest: datetime
    latest: datetime

    @classmethod
    def at(cls, now: datetime) -> "_Window":
        retention = timedelta(days=settings.METRICS_RAW_RETENTION_DAYS)
        return cls(now=now, earliest=now - retention, latest=now + MAX_FUTURE)


def _timestamp(value: Any, window: _Window) -> datetime | str:
    """A datetime, or the reason it is not acceptable."""
    if value is None:
        return window.now
    if isinstance(value, bool):
        return "Must be an ISO-8601 time or Unix seconds."
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            return "Must be an ISO-8601 time or Unix seconds."
    except (ValueError, OverflowError, OSError):
        return "Must be an ISO-8601 time or Unix seconds."
    if moment > window.latest:
        return "More than 5 minutes in the future."
    if moment < window.earliest:
        return f"Older than the {settings.METRICS_RAW_RETENTION_DAYS}-day retention."
    return moment


def _short_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _check_batch(items: Any, kind: str) -> None:
    if not isinstance(items, list):
        raise InvalidBatch(f"{kind} must be a list.", fields={kind: ["Must be a list."]})
    if not items:
        raise InvalidBatch(f"{kind} is empty.", fields={kind: ["Send at least one item."]})
    if len(items) > settings.METRICS_MAX_BATCH:
        metrics.rejected_batches_total.labels(kind).inc()
        raise InvalidBatch(
            f"At most {settings.METRICS_MAX_BATCH} {kind} per request; got {len(items)}.",
            fields={kind: [f"At most {settings.METRICS_MAX_BATCH} items."]},
        )


def _validate(
    items: list[Any],
    kind: str,
    build: Callable[[dict[str, Any], _Window, Callable[[str, str], None]], Any],
) -> list[Any]:
    window = _Window.at(timezone.now())
    errors: dict[str, list[str]] = {}
    rows = []
    for index, item in enumerate(items):

        def fail(field: str, message: str, index: int = index) -> None:
            prefix = f"{kind}[{index}]"
            errors.setdefault(f"{prefix}.{field}" if field else prefix, []).append(message)

        if not isinstance(item, dict):
            fail("", "Must be an object.")
            continue
        row = build(item, window, fail)
        if row is not None:
            rows.append(row)
    if errors:
        metrics.rejected_batches_total.labels(kind).inc()
        bad = len({key.split("]")[0] for key in errors})
        raise InvalidBatch(
            f"{bad} of {len(items)} {kind} are invalid; nothing was stored.", fields=errors
        )
    return rows


# The columns a validated sample fills, in the order _sample returns them (COPY's column list).
SAMPLE_COLUMNS = ("metric", "value", "recorded_at", *LABEL_COLUMNS, "labels")
SAMPLE_COPY_TYPES = ("text", "float8", "timestamptz", *("text",) * len(LABEL_COLUMNS), "jsonb")
SampleRow = tuple[str, float, datetime, str, str, str, str, str, dict[str, str]]
_COLUMN_LABELS = frozenset(LABEL_COLUMNS)  # valid label names: no need to match LABEL_KEY
_NO_LABEL = ("",) * len(LABEL_COLUMNS)


def _bounded(value: Any) -> bool:
    """A finite number within ±METRICS_MAX_ABS_VALUE. Compared before any float conversion: a
    400-digit JSON integer would overflow float(), and 1e308 sums overflow PostgreSQL's SUM."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return abs(value) <= settings.METRICS_MAX_ABS_VALUE


def _integer_label(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and len(str(value)) <= 200


def _sample(
    item: dict[str, Any], window: _Window, fail: Callable[[str, str], None]
) -> SampleRow | None:
    ok = True
    if not item.keys() <= SAMPLE_KEYS:
        for key in item.keys() - SAMPLE_KEYS:
            fail(key, "Unknown field.")
        ok = False
    metric, value, labels = item.get("metric"), item.get("value"), item.get("labels", {})
    if not isinstance(metric, str) or not NAME.fullmatch(metric):
        fail("metric", "Must be a metric name: letters, digits, _ . : - (at most 100).")
        ok = False
    if not _bounded(value):
        bound = settings.METRICS_MAX_ABS_VALUE
        fail("value", f"Must be a finite number from -{bound:g} to {bound:g}.")
        ok = False
    moment = _timestamp(item.get("timestamp"), window)
    if isinstance(moment, str):
        fail("timestamp", moment)
        ok = False
    if labels is None:
        labels = {}
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        fail("labels", f"Must be an object of at most {MAX_LABELS} labels.")
        return None
    integers = False
    # Ingestion is a hot path (issue 4: 20,000 samples/s): the common case, a short string value
    # under a column label, costs a set lookup and a type check.
    for key, label_value in labels.items():
        if key not in _COLUMN_LABELS and not LABEL_KEY.fullmatch(key):
            fail(f"labels.{key}", "Label names are letters, digits and _ (at most 50).")
            ok = False
        elif not isinstance(label_value, str) or len(label_value) > 200 or "\x00" in label_value:
            if not _integer_label(label_value):
                fail(
                    f"labels.{key}",
                    "Label values are strings or integers (at most 200 characters).",
                )
                ok = False
            integers = True
    if not ok:
        return None
    if integers:
        labels = {key: str(v) for key, v in labels.items()}
    return (metric, float(value), moment, *map(labels.get, LABEL_COLUMNS, _NO_LABEL), labels)


def _samples_store(rows: list[SampleRow]) -> None:
    """Binary COPY on PostgreSQL: for a 1,000-sample batch it takes a fraction of bulk_create's
    time, most of which goes into building and quoting the INSERT's parameters."""
    if connection.vendor != "postgresql":
        samples = [MetricSample(**dict(zip(SAMPLE_COLUMNS, row, strict=True))) for row in rows]
        MetricSample.objects.bulk_create(samples, batch_size=2_000)
        return
    fields = [MetricSample._meta.get_field(name) for name in SAMPLE_COLUMNS]
    table = connection.ops.quote_name(MetricSample._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
    # wrap_database_errors: a failure surfaces as django.db's exceptions, as with bulk_create.
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(SAMPLE_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def _event(
    item: dict[str, Any], window: _Window, fail: Callable[[str, str], None]
) -> UsageEvent | None:
    ok = True
    for key in item.keys() - EVENT_KEYS:
        fail(key, "Unknown field.")
        ok = False
    unit, flag, action = item.get("unit"), item.get("flag"), item.get("action")
    if isinstance(unit, int) and not isinstance(unit, bool):
        unit = str(unit)
    if not _short_text(unit, 200) or "\x00" in unit:
        fail("unit", "Must be a non-empty string or integer (at most 200 characters).")
        ok = False
    if not isinstance(flag, str) or not NAME.fullmatch(flag):
        fail("flag", "Must be a flag key.")
        ok = False
    if not isinstance(action, str) or not NAME.fullmatch(action) or len(action) > 50:
        fail("action", "Must be an action name such as exposure or use.")
        ok = False
    moment = _timestamp(item.get("timestamp"), window)
    if isinstance(moment, str):
        fail("timestamp", moment)
        ok = False
    if not ok:
        return None
    day = moment.astimezone(UTC).date()
    return UsageEvent(unit=unit, flag=flag, action=action, occurred_at=moment, day=day)


def samples_ingest(*, items: Any) -> int:
    """Stores a batch of samples, or none of them (InvalidBatch lists every bad item)."""
    _check_batch(items, "samples")
    rows = _validate(items, "samples", _sample)
    with transaction.atomic():
        _samples_store(rows)
    metrics.ingested_total.labels("samples").inc(len(rows))
    return len(rows)


def events_ingest(*, items: Any) -> int:
    """Accepts a batch of usage events, or none of them. An event already stored for the same
    unit, flag, action and UTC day is accepted and dropped: the database's unique key decides,
    so concurrent floods count once too."""
    _check_batch(items, "events")
    rows = _validate(items, "events", _event)
    with transaction.atomic():
        UsageEvent.objects.bulk_create(rows, batch_size=2_000, ignore_conflicts=True)
    metrics.ingested_total.labels("events").inc(len(rows))
    return len(rows)


def samples_compact(*, now: datetime | None = None) -> dict[str, int]:
    """Rolls raw samples older than the raw retention into hourly rollups and deletes them; prunes
    rollups and events past theirs. One transaction, so a retried run finds nothing to redo."""
    now = now or timezone.now()
    cutoff = (now - timedelta(days=settings.METRICS_RAW_RETENTION_DAYS)).replace(
        minute=0, second=0, microsecond=0
    )
    with transaction.atomic():
        old = MetricSample.objects.filter(recorded_at__lt=cutoff)
        groups = (
            old.annotate(bucket=TruncHour("recorded_at"))
            .values("metric", "bucket", *LABEL_COLUMNS[:-1])
            .annotate(
                n=Count("id"),
                total=Sum(clamped("value")),
                low=Min(clamped("value")),
                high=Max(clamped("value")),
            )
        )
        rolled = 0
        for group in groups:
            rollup, created = MetricRollup.objects.select_for_update().get_or_create(
                metric=group["metric"],
                bucket_start=group["bucket"],
                **{column: group[column] for column in LABEL_COLUMNS[:-1]},
                defaults={
                    "count": group["n"],
                    "total": group["total"],
                    "minimum": group["low"],
                    "maximum": group["high"],
                },
            )
            if not created:
                rollup.count += group["n"]
                rollup.total += group["total"]
                rollup.minimum = min(rollup.minimum, group["low"])
                rollup.maximum = max(rollup.maximum, group["high"])
                rollup.save(update_fields=["count", "total", "minimum", "maximum"])
            rolled += 1
        deleted_samples, _ = old.delete()
        rollup_cutoff = now - timedelta(days=settings.METRICS_ROLLUP_RETENTION_DAYS)
        deleted_rollups, _ = MetricRollup.objects.filter(bucket_start__lt=rollup_cutoff).delete()
        event_cutoff = now - timedelta(days=settings.EVENTS_RETENTION_DAYS)
        deleted_events, _ = UsageEvent.objects.filter(occurred_at__lt=event_cutoff).delete()
    return {
        "rollups": rolled,
        "samples_deleted": deleted_samples,
        "rollups_deleted": deleted_rollups,
        "events_deleted": deleted_events,
    }


def metric_definition_create(*, actor: Any, **fields: Any) -> Any:
    """A named metric over a source. Audited; a bad field raises InvalidQuery naming it."""
    from monitoring.exceptions import InvalidQuery, MetricNameTaken
    from monitoring.models import MetricDefinition
    from monitoring.providers import provider_names
    from rollout_control.core.services import audit_record

    name = fields.get("name", "")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidQuery(
            "Letters, digits, _ . : - (at most 100), starting with a letter or _.", field="name"
        )
    if MetricDefinition.objects.filter(name=name).exists():
        raise MetricNameTaken(f"A metric named {name!r} exists.", field="name")
    if fields.get("aggregation") not in MetricDefinition.Aggregation.values:
        choices = ", ".join(MetricDefinition.Aggregation.values)
        raise InvalidQuery(f"Unknown aggregation; use one of {choices}.", field="aggregation")
    source = fields.get("source", "samples")
    if source not in provider_names():
        raise InvalidQuery(
            f"Unknown source; use one of {', '.join(provider_names())}.", field="source"
        )
    if fields["aggregation"] == MetricDefinition.Aggregation.RATIO and not fields.get(
        "denominator"
    ):
        raise InvalidQuery("A ratio needs a denominator metric.", field="denominator")
    if source == "prometheus" and not fields.get("query"):
        raise InvalidQuery("A Prometheus metric needs a PromQL query.", field="query")
    if source == "samples" and not fields.get("metric"):
        raise InvalidQuery("Name the sample metric to aggregate.", field="metric")
    with transaction.atomic():
        definition = MetricDefinition.objects.create(**{"source": source, **fields})
        audit_record(
            actor=actor, action="metric_definition.create", obj=definition, after=dict(fields)
        )
    return definition
