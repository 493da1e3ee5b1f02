"""Data for the plan page's charts, as plain JSON-able dicts (rendered by static/js/charts.js).

Times are epoch milliseconds: the charts use linear axes and format dates themselves, so
Chart.js needs no date adapter."""

import datetime as dt
from collections import defaultdict
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncHour

from flags.models import Flag
from monitoring.exceptions import InvalidQuery, UnknownMetric
from monitoring.models import MetricDefinition
from monitoring.selectors import metric_series
from phases.models import Guardrail, GuardrailCheck, Incident, RampStep, RolloutPlan
from rollout_control.dashboard.selectors import flag_bp

GUARDRAIL_DAYS = 7
SERIES_DAYS = 7
DEFAULT_SERIES = "Everyone else"
_FAILS_ABOVE = ("gt", "gte", "eq")
_SIGNS = {"gt": "above", "gte": "at or above", "lt": "below", "lte": "at or below", "eq": "at"}
_ACTIONS = {"alert": "alert", "pause": "pause", "rollback": "roll back"}


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _pct(basis_points: int) -> float:
    return basis_points / 100


# Rollout percentage per flag ----------------------------------------------------------------


def _state_bp(state: dict[str, Any] | None, cohort: str | None) -> int:
    """A flag state (as in the audit log and checkpoints) as basis points for one rule."""
    if state is None or state.get("kill_switch"):
        return 0
    if state.get("forced_on"):
        return 10_000
    if cohort is None:
        return round(float(state["rollout_percentage"]) * 100)
    for rule in state.get("cohort_rules", []):
        if rule["cohort"] == cohort:
            return round(float(rule["percentage"]) * 100)
    return 0


def _series_key(cohort: str | None) -> str:
    return cohort or DEFAULT_SERIES


def percentage_charts(plan: RolloutPlan, flags: list[Flag], now: dt.datetime) -> list[dict]:
    """Per flag, one stepped line per rule the plan ramps (a cohort, or everyone else), from the
    ramp steps and phase starts; rollbacks are marked at the value they lowered to, and each
    line ends at the rule's value now (which shows a kill switch or a change by hand)."""
    points: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    steps = RampStep.objects.filter(target__phase__plan=plan).select_related(
        "target__flag", "target__cohort"
    )
    cohorts_of: dict[str, set[str | None]] = defaultdict(set)
    for step in steps.order_by("created_at", "id"):
        cohort = step.target.cohort.key if step.target.cohort_id else None
        cohorts_of[step.target.flag.name].add(cohort)
        points[step.target.flag.name][_series_key(cohort)].append(
            {"x": _ms(step.created_at), "y": _pct(step.to_bp), "kind": step.reason}
        )
    for incident in Incident.objects.filter(plan=plan).order_by("created_at"):
        for step in incident.steps:
            after = step.get("after")
            if not after or step.get("flag") not in cohorts_of:
                continue  # unchanged by the rollback: the line simply goes on
            for cohort in cohorts_of[step["flag"]]:
                value = _state_bp(after, cohort)
                points[step["flag"]][_series_key(cohort)].append(
                    {"x": _ms(incident.created_at), "y": _pct(value), "kind": "rollback"}
                )
    charts = []
    start = plan.activated_at or plan.created_at
    for flag in flags:
        series = []
        for cohort in sorted(cohorts_of.get(flag.name, ()), key=lambda c: (c is None, c or "")):
            rows = sorted(points[flag.name][_series_key(cohort)], key=lambda p: p["x"])
            current = 0 if flag.everyone is False else flag_bp(flag, cohort)
            if flag.everyone is True:
                current = 10_000
            rows.append({"x": _ms(now), "y": _pct(current), "kind": "now"})
            series.append({"label": _series_key(cohort), "points": rows})
        if not series:
            continue
        steps = sum(1 for s in series for p in s["points"] if p["kind"] in ("ramp", "activation"))
        rollbacks = sum(1 for p in series[0]["points"] if p["kind"] == "rollback")
        now_values = ", ".join(f"{s['label']} {s['points'][-1]['y']:g} %" for s in series)
        charts.append(
            {
                "kind": "steps",
                "id": f"chart-flag-{flag.pk}",
                "title": flag.name,
                "xMin": _ms(start),
                "xMax": _ms(now),
                "series": series,
                "summary": (
                    f"Rollout percentage of {flag.name} over time, one line per rule. Now: "
                    f"{now_values}. {steps} ramp steps, {rollbacks} rollbacks."
                ),
            }
        )
    return charts


# Guardrails against their thresholds --------------------------------------------------------


def _with_unit(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:g} %"
    return f"{value:g} {unit}" if unit in ("ms", "/min", "/5") else f"{value:g}"


def _threshold_label(guardrails: list[Guardrail], unit: str) -> str:
    actions = ", ".join(dict.fromkeys(_ACTIONS.get(g.action, g.action) for g in guardrails))
    first = guardrails[0]
    sign = _SIGNS.get(first.comparator, first.comparator)
    return f"{actions}: {sign} {_with_unit(first.threshold, unit)}"


def guardrail_charts(plan: RolloutPlan, now: dt.datetime) -> list[dict]:
    """Per metric the plan guards, the checked value per hour over the last 7 days (the worst
    of the hour: the highest when the guardrail fails above its threshold, else the lowest),
    hours with a failing check marked, and each guardrail's threshold as a line."""
    since = now - dt.timedelta(days=GUARDRAIL_DAYS)
    guardrails = list(plan.guardrails.filter(enabled=True).order_by("id"))
    by_metric: dict[str, list[Guardrail]] = defaultdict(list)
    for guardrail in guardrails:
        by_metric[guardrail.metric].append(guardrail)
    units = dict(
        MetricDefinition.objects.filter(name__in=list(by_metric)).values_list("name", "unit")
    )
    charts = []
    for metric, group in by_metric.items():
        checks = (
            GuardrailCheck.objects.filter(guardrail__in=group, minute__gt=since)
            .annotate(hour=TruncHour("minute"))
            .values("hour")
            .annotate(
                high=Max("value"),
                low=Min("value"),
                fails=Count("id", filter=Q(verdict="fail")),
                checks=Count("id"),
            )
            .order_by("hour")
        )
        above = group[0].comparator in _FAILS_ABOVE
        values, failures, total = [], [], 0
        for row in checks:
            total += row["checks"]
            value = row["high"] if above else row["low"]
            if value is None:
                continue
            point = {"x": _ms(row["hour"]), "y": value}
            values.append(point)
            if row["fails"]:
                failures.append(point)
        thresholds: dict[tuple[str, float], list[Guardrail]] = defaultdict(list)
        for guardrail in group:
            thresholds[(guardrail.comparator, guardrail.threshold)].append(guardrail)
        unit = units.get(metric, "")
        latest = (
            f"latest hourly value {_with_unit(values[-1]['y'], unit)}"
            if values
            else "no values yet"
        )
        charts.append(
            {
                "kind": "guardrail",
                "summary": (
                    f"{metric} per hour over the last {GUARDRAIL_DAYS} days: {latest}; "
                    f"{len(failures)} hours with a failing check; thresholds: "
                    + "; ".join(_threshold_label(gs, unit) for gs in thresholds.values())
                    + "."
                ),
                "id": f"chart-guardrail-{metric}",
                "title": metric,
                "names": [g.name for g in group],
                "unit": unit,
                "xMin": _ms(since),
                "xMax": _ms(now),
                "values": values,
                "failures": failures,
                "checks": total,
                "thresholds": [
                    {"label": _threshold_label(gs, unit), "y": threshold}
                    for (_comparator, threshold), gs in thresholds.items()
                ],
            }
        )
    return charts


# Satisfaction and adoption over time ---------------------------------------------------------


def _series(name: str, filters: dict[str, str], now: dt.datetime) -> list[dict[str, Any]]:
    try:
        points = metric_series(
            name=name,
            window=dt.timedelta(days=SERIES_DAYS),
            step=dt.timedelta(days=1),
            filters=filters,
            now=now,
        )
    except (UnknownMetric, InvalidQuery):
        return []
    return [
        {"x": _ms(p.end), "y": p.result.value}
        for p in points
        if p.result.status == "ok" and p.result.value is not None
    ]


def outcome_charts(plan: RolloutPlan, flags: list[Flag], now: dt.datetime) -> list[dict]:
    """Satisfaction (mean rating of the plan's feedback) and adoption (per flag) per day."""
    since = _ms(now - dt.timedelta(days=SERIES_DAYS))
    satisfaction = _series("feedback_satisfaction", {"plan": plan.name}, now)
    adoption = [
        {"label": flag.name, "points": _series("adoption", {"flag": flag.name}, now)}
        for flag in flags
    ]
    return [
        {
            "kind": "series",
            "id": "chart-satisfaction",
            "title": "Satisfaction",
            "unit": "/5",
            "yMin": 1,
            "yMax": 5,
            "xMin": since,
            "xMax": _ms(now),
            "series": [{"label": "Mean rating", "points": satisfaction}],
            "empty": not satisfaction,
            "summary": f"Mean feedback rating per day over the last {SERIES_DAYS} days."
            + (f" Latest: {satisfaction[-1]['y']:.2f} / 5." if satisfaction else ""),
        },
        {
            "kind": "series",
            "id": "chart-adoption",
            "title": "Adoption",
            "unit": "ratio",
            "yMin": 0,
            "yMax": 1,
            "xMin": since,
            "xMax": _ms(now),
            "series": [s for s in adoption if s["points"]],
            "empty": not any(s["points"] for s in adoption),
            "summary": "Share of exposed units that used each flag's feature, per day, "
            f"{SERIES_DAYS} days."
            + "".join(
                f" {s['label']}: latest {s['points'][-1]['y'] * 100:.0f} %."
                for s in adoption
                if s["points"]
            ),
        },
    ]
