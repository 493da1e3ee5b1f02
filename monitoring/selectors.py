import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring.exceptions import InvalidQuery, UnknownMetric
from monitoring.heartbeats import watches
from monitoring.models import Heartbeat, MetricDefinition
from monitoring.providers import MetricResult, provider_for
from rollout_control.schedule import HEARTBEAT_INTERVAL_SECONDS

STALL_AFTER = timedelta(seconds=2 * HEARTBEAT_INTERVAL_SECONDS)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    component: str
    last_seen_at: datetime | None
    stalled: bool
    label: str = ""
    idle: bool = False  # not seen lately, but nothing needs it now (no alert)


def scheduler_status(*, now: datetime | None = None) -> list[ComponentStatus]:
    """Beat and worker, each stalled when not seen for more than two heartbeat intervals; then
    the registered components (monitoring.heartbeats), stalled only while needed."""
    now = now or timezone.now()
    seen = dict(Heartbeat.objects.values_list("component", "last_seen_at"))
    statuses = [
        ComponentStatus(
            component=component,
            last_seen_at=seen.get(component),
            stalled=seen.get(component) is None or now - seen[component] > STALL_AFTER,
            label=label,
        )
        for component, label in Heartbeat.Component.choices
    ]
    for component, watch in watches().items():
        last = seen.get(component)
        late = last is None or now - last > watch.stall_after()
        needed = late and watch.needed()  # the query only when it could matter
        statuses.append(
            ComponentStatus(
                component=component,
                last_seen_at=last,
                stalled=needed,
                label=watch.label,
                idle=late and not needed,
            )
        )
    return statuses


MAX_SERIES_POINTS = 500


def metric_definition_get(*, name: str) -> MetricDefinition:
    definition = MetricDefinition.objects.filter(name=name).first()
    if definition is None:
        raise UnknownMetric(f"No metric named {name!r}.", field="name")
    return definition


def _check_filters(definition: MetricDefinition, filters: Mapping[str, str]) -> None:
    allowed = set(definition.filter_labels)
    for label, value in filters.items():
        if label not in allowed:
            choices = ", ".join(sorted(allowed)) or "none"
            raise InvalidQuery(
                f"{definition.name} does not filter on {label!r} (it does on: {choices}).",
                field=label,
            )
        if not isinstance(value, str) or not value or len(value) > 200 or "\x00" in value:
            raise InvalidQuery(
                "Must be a value of 1 to 200 characters (no NUL character).", field=label
            )


def metric_value(
    *,
    name: str,
    window: timedelta,
    filters: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> MetricResult:
    """The metric over (now - window, now]; below its minimum sample count, insufficient data."""
    definition = metric_definition_get(name=name)
    filters = dict(filters or {})
    _check_filters(definition, filters)
    return _evaluate(definition, window, filters, now or timezone.now())


def _evaluate(
    definition: MetricDefinition, window: timedelta, filters: Mapping[str, str], end: datetime
) -> MetricResult:
    provider = provider_for(definition.source)
    if provider is None:
        detail = f"no provider {definition.source!r}"
        return MetricResult(value=None, samples=0, status="error", detail=detail)
    result = provider.evaluate(definition, start=end - window, end=end, filters=filters)
    if result.value is not None and not math.isfinite(result.value):
        # JSON, the reviews' JSONB and comparisons cannot carry it (a provider summing huge
        # values, Prometheus answering +Inf): the metric cannot be computed.
        detail = f"the value is not a finite number ({result.value})"
        return MetricResult(value=None, samples=result.samples, status="error", detail=detail)
    return result


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start: datetime
    end: datetime
    result: MetricResult


def metric_series(
    *,
    name: str,
    window: timedelta,
    step: timedelta,
    filters: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[SeriesPoint]:
    """The metric per step over the window, oldest first, for charts."""
    if step <= timedelta(0) or step > window:
        raise InvalidQuery("The step must be positive and no longer than the window.", field="step")
    points = int(window / step)
    if points > MAX_SERIES_POINTS:
        raise InvalidQuery(f"At most {MAX_SERIES_POINTS} points; use a longer step.", field="step")
    definition = metric_definition_get(name=name)
    filters = dict(filters or {})
    _check_filters(definition, filters)
    end = now or timezone.now()
    series = []
    for index in range(points, 0, -1):
        point_end = end - step * (index - 1)
        result = _evaluate(definition, step, filters, point_end)
        series.append(SeriesPoint(start=point_end - step, end=point_end, result=result))
    return series
