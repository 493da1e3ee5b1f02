"""Where metric values come from. A provider answers one definition over one window.

Built in: `samples` (pushed metric samples), `events` (adoption from usage events) and
`prometheus` (PromQL instant queries, when PROMETHEUS_URL is set). Other apps register theirs at
start-up with `register_provider` (feedback adds `feedback`); monitoring never imports them.
"""

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, QuerySet, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Greatest, Least

from monitoring.models import MetricDefinition, MetricRollup, MetricSample, UsageEvent
from monitoring.windows import format_window

OK = "ok"
INSUFFICIENT = "insufficient_data"
ERROR = "error"
LABEL_COLUMNS = ("flag", "plan", "phase", "cohort", "unit")


@dataclass(frozen=True, slots=True)
class MetricResult:
    value: float | None
    samples: int
    status: str
    detail: str = ""

    @classmethod
    def insufficient(cls, samples: int, detail: str) -> "MetricResult":
        return cls(value=None, samples=samples, status=INSUFFICIENT, detail=detail)


class Provider(Protocol):
    def evaluate(
        self,
        definition: MetricDefinition,
        *,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult: ...


_providers: dict[str, Provider] = {}


def register_provider(source: str, provider: Provider) -> None:
    _providers[source] = provider


def provider_for(source: str) -> Provider | None:
    return _providers.get(source)


def provider_names() -> list[str]:
    return sorted(_providers)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate; SQLite falls back to Python (see _percentile)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str | Combinable, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def clamped(expression: str | Combinable, scale: str | None = None) -> Combinable:
    """The value limited to ±METRICS_MAX_ABS_VALUE (times the `scale` column, for rollup
    totals), in SQL. Ingestion refuses larger values, but a row written another way (1e308 by
    hand, NaN or Infinity in PostgreSQL) must not make SUM or AVG overflow ("value out of range")
    and take every guardrail and page that reads the metric down with it."""
    value = F(expression) if isinstance(expression, str) else expression
    limit = float(settings.METRICS_MAX_ABS_VALUE)
    low: Combinable = Value(-limit)
    high: Combinable = Value(limit)
    if scale is not None:
        low, high = Cast(scale, FloatField()) * low, Cast(scale, FloatField()) * high
    return Least(Greatest(value, low), high, output_field=FloatField())


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks: the same answer as percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


_FRACTIONS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def _filtered(queryset: QuerySet, filters: Mapping[str, str]) -> QuerySet:
    for label, value in filters.items():
        if label in LABEL_COLUMNS:
            queryset = queryset.filter(**{label: value})
        else:
            queryset = queryset.filter(**{f"labels__{label}": value})
    return queryset


class SampleProvider:
    """Aggregates pushed samples; hourly rollups cover the part of a window older than the raw
    retention (counts, sums, means and rates only: percentiles need raw values)."""

    def _raw(
        self, metric: str, start: datetime, end: datetime, filters: Mapping[str, str]
    ) -> QuerySet:
        queryset = MetricSample.objects.filter(
            metric=metric, recorded_at__gt=start, recorded_at__lte=end
        )
        return _filtered(queryset, filters)

    def _count_sum(
        self, metric: str, start: datetime, end: datetime, filters: Mapping[str, str]
    ) -> tuple[int, float]:
        raw = self._raw(metric, start, end, filters).aggregate(
            n=Count("id"), total=Sum(clamped("value"))
        )
        count, total = raw["n"] or 0, raw["total"] or 0.0
        cutoff = end - timedelta(days=settings.METRICS_RAW_RETENTION_DAYS)
        if start < cutoff and set(filters) <= set(LABEL_COLUMNS) - {"unit"}:
            rolled = MetricRollup.objects.filter(
                metric=metric, bucket_start__gte=start, bucket_start__lt=cutoff
            )
            rolled = rolled.filter(**filters).aggregate(
                n=Sum("count"), total=Sum(clamped("total", scale="count"))
            )
            count += rolled["n"] or 0
            total += rolled["total"] or 0.0
        return count, total

    def evaluate(
        self,
        definition: MetricDefinition,
        *,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult:
        aggregation = definition.aggregation
        minimum = definition.min_samples
        if aggregation == MetricDefinition.Aggregation.RATIO:
            _, numerator = self._count_sum(definition.metric, start, end, filters)
            count, denominator = self._count_sum(definition.denominator, start, end, filters)
            if count < minimum or denominator == 0:
                return MetricResult.insufficient(
                    count, f"{count} {definition.denominator} samples (need {minimum})"
                )
            return MetricResult(value=numerator / denominator, samples=count, status=OK)
        if aggregation in _FRACTIONS:
            return self._percentile(definition, start, end, filters)
        count, total = self._count_sum(definition.metric, start, end, filters)
        # A mean needs one sample even where the definition asks for none (min_samples=0).
        if count < minimum or (aggregation == MetricDefinition.Aggregation.MEAN and not count):
            return MetricResult.insufficient(count, f"{count} samples (need {max(minimum, 1)})")
        match aggregation:
            case MetricDefinition.Aggregation.COUNT:
                value = float(count)
            case MetricDefinition.Aggregation.SUM:
                value = total
            case MetricDefinition.Aggregation.RATE:
                value = total / ((end - start).total_seconds() / 60)
            case MetricDefinition.Aggregation.MEAN:
                value = total / count
            case _:
                return MetricResult(
                    value=None,
                    samples=count,
                    status=ERROR,
                    detail=f"samples cannot do {aggregation}",
                )
        return MetricResult(value=value, samples=count, status=OK)

    def _percentile(
        self,
        definition: MetricDefinition,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult:
        fraction = _FRACTIONS[definition.aggregation]
        raw = self._raw(definition.metric, start, end, filters)
        if connection.vendor == "postgresql":
            row = raw.aggregate(n=Count("id"), p=PercentileCont(clamped("value"), fraction))
            count, value = row["n"], row["p"]
        else:
            values = list(raw.annotate(v=clamped("value")).values_list("v", flat=True))
            count, value = len(values), (percentile(values, fraction) if values else None)
        if count < definition.min_samples:
            return MetricResult.insufficient(
                count, f"{count} samples (need {definition.min_samples})"
            )
        return MetricResult(value=value, samples=count, status=OK)


class EventProvider:
    """Adoption: of the units with an `exposure` event for the flag in the window, the share that
    also have a `use` event in it."""

    def evaluate(
        self,
        definition: MetricDefinition,
        *,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult:
        flag = filters.get("flag")
        if not flag:
            return MetricResult(
                value=None, samples=0, status=ERROR, detail="adoption needs a flag filter"
            )
        events = UsageEvent.objects.filter(flag=flag, occurred_at__gt=start, occurred_at__lte=end)
        exposed = events.filter(action="exposure").values("unit").distinct()
        exposed_count = exposed.count()
        if exposed_count < definition.min_samples:
            return MetricResult.insufficient(
                exposed_count, f"{exposed_count} exposed units (need {definition.min_samples})"
            )
        used = events.filter(action="use", unit__in=exposed).values("unit").distinct().count()
        return MetricResult(value=used / exposed_count, samples=exposed_count, status=OK)


_SAFE_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


class PrometheusProvider:
    """PromQL instant query. `$window`, `$flag`, `$plan`, `$phase`, `$cohort` in the query are
    replaced; several series in the answer are summed; an empty answer is insufficient data."""

    def __init__(self, base_url: str | None = None, timeout: float = 5.0) -> None:
        self._base_url = base_url
        self.timeout = timeout

    @property
    def base_url(self) -> str:
        return (self._base_url or settings.PROMETHEUS_URL).rstrip("/")

    def evaluate(
        self,
        definition: MetricDefinition,
        *,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult:
        if not self.base_url:
            return MetricResult(
                value=None, samples=0, status=ERROR, detail="PROMETHEUS_URL is not set"
            )
        query = definition.query.replace("$window", format_window(end - start))
        for label, value in filters.items():
            if not _SAFE_LABEL_VALUE.match(value):
                return MetricResult(
                    value=None, samples=0, status=ERROR, detail=f"unsafe {label} value"
                )
            query = query.replace(f"${label}", value)
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode(
            {"query": query, "time": end.timestamp()}
        )
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 (configured URL)
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            # Prometheus explains a bad query in a JSON body on 400/422.
            try:
                body = json.load(exc)
            except ValueError:
                return MetricResult(
                    value=None, samples=0, status=ERROR, detail=f"prometheus: {exc}"
                )
        except (OSError, ValueError) as exc:
            return MetricResult(value=None, samples=0, status=ERROR, detail=f"prometheus: {exc}")
        return self._parse(body)

    @staticmethod
    def _parse(body: dict) -> MetricResult:
        if body.get("status") != "success":
            return MetricResult(
                value=None, samples=0, status=ERROR, detail=str(body.get("error", body))[:300]
            )
        data = body["data"]
        if data["resultType"] == "scalar":
            values = [float(data["result"][1])]
        elif data["resultType"] == "vector":
            values = [float(series["value"][1]) for series in data["result"]]
        else:
            return MetricResult(
                value=None, samples=0, status=ERROR, detail=f"unsupported {data['resultType']}"
            )
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return MetricResult.insufficient(0, "prometheus returned no samples")
        return MetricResult(value=sum(values), samples=len(values), status=OK)


register_provider("samples", SampleProvider())
register_provider("events", EventProvider())
register_provider("prometheus", PrometheusProvider())
