"""The home page: each live plan's phases, progress, next ramp, guardrails and gate; the
scheduler, degradation and open critical feedback; and the partial that htmx polls."""

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from monitoring.services import heartbeat_record, samples_ingest
from phases import services
from phases.models import RolloutPlan
from rollout_control.dashboard import selectors
from tests.phases.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def _traffic(*, error_share: float = 0.0, latency_ms: float = 100.0) -> None:
    now = timezone.now().isoformat()
    samples_ingest(
        items=[{"metric": "requests", "value": 100, "timestamp": now} for _ in range(20)]
        + [{"metric": "errors", "value": 2000 * error_share, "timestamp": now}]
        + [{"metric": "latency_ms", "value": latency_ms, "timestamp": now} for _ in range(20)]
        + [{"metric": "data_corruption", "value": 0, "timestamp": now}]
    )


def _summary(plan: RolloutPlan) -> selectors.PlanSummary:
    return selectors.plan_detail(plan, timezone.now())


def test_home__live_plan__phases_progress_and_gate(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.get(reverse("dashboard:home"))
    page = response.content.decode()
    assert "Stripboard" in page
    assert 'aria-current="step"' in page and "Internal testing" in page
    assert "100 % of 100 % target" in page  # scenes for the internal cohort
    assert "Not ready" in page and "Sign-off missing from release manager" in page
    assert 'hx-get="/live/"' in page and 'hx-trigger="every 15s"' in page


def test_home_live__partial_only(manager_client: Client, plan: RolloutPlan) -> None:
    page = manager_client.get(reverse("dashboard:home_live")).content.decode()
    assert page.lstrip().startswith('<div id="live"')
    assert "<html" not in page
    assert "Stripboard" in page


def test_guardrails__rollback_guardrail_failing__red_with_failing_metric(
    manager_client: Client, plan: RolloutPlan
) -> None:
    _traffic(error_share=0.05)
    services.check_guardrails(now=timezone.now())
    status = _summary(plan).guardrails
    assert (status.level, status.label) == ("red", "Failing")
    assert {g.name for g in status.failing} == {"Error rate above 2 %", "Error rate spike"}
    page = manager_client.get(reverse("dashboard:home")).content.decode()
    assert "Failing" in page and "Error rate spike" in page and "error_rate" in page


def test_guardrails__only_an_alert_failing__amber(plan: RolloutPlan) -> None:
    _traffic(latency_ms=1500)  # above the 1 s alert, below the 2 s rollback
    services.check_guardrails(now=timezone.now())
    status = _summary(plan).guardrails
    assert (status.level, status.label) == ("amber", "Alerting")
    assert [g.name for g in status.failing] == ["Response time above 1 s"]


def test_guardrails__passing__green_and_without_data__none(plan: RolloutPlan) -> None:
    assert _summary(plan).guardrails.level == "none"
    _traffic()
    services.check_guardrails(now=timezone.now())
    assert _summary(plan).guardrails.level == "green"


def _ramp_plan(release_flags: dict[str, str], weekdays: list[int]) -> RolloutPlan:
    definition = {
        "flags": ["basic"],
        "allowed_weekdays": weekdays,
        "step_hour": 9,
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "basic", "start": 10, "step": 10, "target": 30}]}
        ],
    }
    plan = services.plan_create(
        name="Ramp", definition=definition, flags=release_flags, actor=SYSTEM
    )
    return services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now())


def _target(plan: RolloutPlan) -> Any:
    return _summary(plan).targets[0]


def test_next_step__before_and_after_the_step_hour(release_flags: dict[str, str]) -> None:
    with time_machine.travel("2030-01-07 07:00Z", tick=False):  # a Monday
        plan = _ramp_plan(release_flags, [0, 1, 2, 3, 4])
    with time_machine.travel("2030-01-08 08:00Z", tick=False):
        target = _target(plan)
        assert target.next_step_at.isoformat() == "2030-01-08T09:00:00+00:00"
        assert not target.step_due
    with time_machine.travel("2030-01-08 09:05Z", tick=False):
        assert _target(plan).step_due  # the scheduler's next run takes it
        services.advance_ramps(now=timezone.now())
        target = _target(plan)
        assert target.current_bp == 2000 and not target.step_due
        assert target.next_step_at.isoformat() == "2030-01-09T09:00:00+00:00"


def test_next_step__friday_after_the_step__monday(release_flags: dict[str, str]) -> None:
    with time_machine.travel("2030-01-11 07:00Z", tick=False):  # a Friday
        plan = _ramp_plan(release_flags, [0, 1, 2, 3, 4])
    with time_machine.travel("2030-01-11 10:00Z", tick=False):
        services.advance_ramps(now=timezone.now())
        assert _target(plan).next_step_at.isoformat() == "2030-01-14T09:00:00+00:00"


def test_next_step__at_target_or_paused__none(release_flags: dict[str, str]) -> None:
    plan = _ramp_plan(release_flags, list(range(7)))
    plan = services.plan_pause(plan=plan, actor=SYSTEM, reason="wait")
    target = _target(plan)
    assert target.next_step_at is None and target.note == "plan paused"


def test_gate_readiness__problems_listed_until_ready(plan: RolloutPlan, manager: Any) -> None:
    phase = plan.phases.get(status="active")
    gate = _summary(plan).gate
    assert gate.problems == [
        "1 of 1 criteria not passing",
        "sign-off missing from release manager",
        "1 checklist item(s) open",
        "minimum duration: 14 day(s) to go",
    ]
    _traffic()
    services.sign_off(phase=phase, user=manager)
    services.checklist_tick(item=phase.checklist.get(), user=manager)
    with time_machine.travel(timezone.now() + dt.timedelta(days=14, minutes=1)):
        _traffic()
        gate = _summary(plan).gate
        assert gate.problems == [] and gate.ready


def test_service_status__scheduler_degradation_and_open_critical(
    manager_client: Client, plan: RolloutPlan
) -> None:
    heartbeat_record(component="beat")
    now = timezone.now()
    samples_ingest(items=[{"metric": "stress", "value": 0.85, "timestamp": now.isoformat()}])
    services.degradation_check(now=now)
    page = manager_client.get(reverse("dashboard:home")).content.decode()
    assert "Non-essential features off" in page
    status = selectors.service_status(timezone.now())
    beat, worker, guardrails = status.scheduler
    assert (guardrails.label, guardrails.last_seen_at) == ("Guardrail checks", None)
    assert (beat.component, beat.stalled) == ("beat", False)
    assert (worker.component, worker.stalled) == ("worker", True)
    assert status.open_critical.status in ("ok", "insufficient_data", "error")


def test_metric_reading__unknown_metric__no_data() -> None:
    reading = selectors.metric_reading("no_such_metric", dt.timedelta(days=1))
    assert (reading.value, reading.ok) == ("—", False)
