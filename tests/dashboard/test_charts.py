"""The plan page's charts and the flag page's audit diffs, from real history."""

import datetime as dt
import json

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flags import services as flag_services
from flags.models import Flag
from monitoring.services import events_ingest, samples_ingest
from phases import services
from phases.models import RolloutPlan
from rollout_control.dashboard import charts, selectors
from tests.phases.conftest import SYSTEM, verify_safe_point

pytestmark = pytest.mark.django_db
DEFINITION = {
    "flags": ["basic"],
    "allowed_weekdays": list(range(7)),
    "step_hour": 9,
    "phases": [
        {"name": "Ramp", "targets": [{"flag": "basic", "start": 10, "step": 10, "target": 50}]}
    ],
}


def _ms(moment: str) -> int:
    return int(dt.datetime.fromisoformat(moment).timestamp() * 1000)


@pytest.fixture
def ramped(release_flags: dict[str, str]) -> RolloutPlan:
    """Activated on Jan 1 (10 %), stepped Jan 2 (20 %), checkpointed, stepped Jan 3 (30 %), then
    rolled back on Jan 3 at noon (to the safe point: 20 %)."""
    plan = services.plan_create(
        name="Ramp", definition=DEFINITION, flags=release_flags, actor=SYSTEM
    )
    with time_machine.travel("2030-01-01 08:00Z", tick=False):
        plan = services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now())
    with time_machine.travel("2030-01-02 09:30Z", tick=False):
        services.advance_ramps(now=timezone.now())
        verify_safe_point(plan, timezone.now())
    with time_machine.travel("2030-01-03 09:30Z", tick=False):
        services.advance_ramps(now=timezone.now())
    with time_machine.travel("2030-01-03 12:00Z", tick=False):
        now = timezone.now()
        services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="test", now=now)
    plan.refresh_from_db()
    return plan


def test_percentage_chart__steps_rollback_marked_at_the_restored_value(ramped: RolloutPlan) -> None:
    with time_machine.travel("2030-01-04 00:00Z", tick=False):
        flags = selectors.plan_flags(ramped)
        (chart,) = charts.percentage_charts(ramped, flags, timezone.now())
    assert chart["title"] == "scenes" and chart["kind"] == "steps"
    (series,) = chart["series"]
    assert series["label"] == "Everyone else"
    assert [(p["x"], p["y"], p["kind"]) for p in series["points"]] == [
        (_ms("2030-01-01T08:00:00+00:00"), 10, "activation"),
        (_ms("2030-01-02T09:30:00+00:00"), 20, "ramp"),
        (_ms("2030-01-03T09:30:00+00:00"), 30, "ramp"),
        (_ms("2030-01-03T12:00:00+00:00"), 20, "rollback"),
        (_ms("2030-01-04T00:00:00+00:00"), 20, "now"),
    ]
    assert "3 ramp steps, 1 rollbacks" in chart["summary"]


def test_percentage_chart__killed_flag__line_ends_at_zero(plan: RolloutPlan) -> None:
    flag_services.flag_set_kill_switch(key="scenes", killed=True, actor=SYSTEM, reason="r")
    flags = selectors.plan_flags(plan)
    (chart,) = charts.percentage_charts(plan, flags, timezone.now())
    (series,) = chart["series"]
    assert series["label"] == "internal"
    assert [p["y"] for p in series["points"]] == [100, 0]


def _errors(at: dt.datetime, share: float) -> None:
    stamp = at.isoformat()
    samples_ingest(
        items=[{"metric": "requests", "value": 100, "timestamp": stamp} for _ in range(20)]
        + [{"metric": "errors", "value": 2000 * share, "timestamp": stamp}]
        + [{"metric": "data_corruption", "value": 0, "timestamp": stamp}]
    )


def test_guardrail_chart__hourly_values_failures_and_thresholds(plan: RolloutPlan) -> None:
    now = timezone.now()
    for hours, share in [(3, 0.01), (2, 0.05), (1, 0.0)]:
        at = now - dt.timedelta(hours=hours)
        _errors(at - dt.timedelta(seconds=30), share)
        services.check_guardrails(now=at)
    by_metric = {c["title"]: c for c in charts.guardrail_charts(plan, now)}
    chart = by_metric["error_rate"]
    assert [round(p["y"], 4) for p in chart["values"]] == [0.01, 0.05, 0.0]
    assert [round(p["y"], 4) for p in chart["failures"]] == [0.05]
    assert chart["thresholds"] == [{"label": "alert, roll back: above 2 %", "y": 0.02}]
    assert chart["unit"] == "ratio"
    assert by_metric["job_failures"]["values"] == []  # no samples: insufficient data
    assert by_metric["job_failures"]["checks"] == 3


def test_outcome_charts__adoption_per_flag_satisfaction_empty(plan: RolloutPlan) -> None:
    now = timezone.now()
    events = []
    for n in range(12):
        at = (now - dt.timedelta(hours=2)).isoformat()
        events.append({"unit": f"u{n}", "flag": "scenes", "action": "exposure", "timestamp": at})
        if n < 9:
            events.append({"unit": f"u{n}", "flag": "scenes", "action": "use", "timestamp": at})
    events_ingest(items=events)
    satisfaction, adoption = charts.outcome_charts(plan, selectors.plan_flags(plan), now)
    assert satisfaction["empty"]
    assert [s["label"] for s in adoption["series"]] == ["scenes"]
    assert adoption["series"][0]["points"][-1]["y"] == pytest.approx(0.75)


def test_plan_page__chart_data_embedded_and_history_listed(
    manager_client: Client, ramped: RolloutPlan
) -> None:
    response = manager_client.get(reverse("dashboard:plan", args=[ramped.pk]))
    page = response.content.decode()
    data = json.loads(
        page.split('<script id="chart-data" type="application/json">')[1].split("</script>")[0]
    )
    assert [c["id"] for c in data if c["kind"] == "steps"] == [
        f"chart-flag-{Flag.objects.get(name='scenes').pk}"
    ]
    assert 'role="img"' in page and "chart.umd.js" in page
    assert "Rollback (Manual)" in page
    assert "20 % → 30 %" in page  # the ramp steps table


def test_flag_audit__diffs_per_field_and_per_cohort_rule(plan: RolloutPlan) -> None:
    flag_services.flag_update(
        key="scenes",
        actor=SYSTEM,
        changes={
            "cohort_rules": [
                flag_services.CohortRuleInput("internal", 50),
                flag_services.CohortRuleInput("paying", 5),
            ],
            "rollout_percentage": 1,
            "description": "Scenes",
        },
    )
    row = selectors.flag_audit(Flag.objects.get(name="scenes"))[0]
    changes = {c.name: (c.before, c.after) for c in row.changes}
    assert changes == {
        "description": ("", "Scenes"),
        "everyone else": ("0 %", "1 %"),
        "cohort internal": ("100 %", "50 %"),
        "cohort paying": (None, "5 %"),
    }
