import json
import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from flags.selectors import evaluate_flag
from monitoring.selectors import metric_value
from phases.models import Guardrail, Incident, RampStep, RolloutPlan
from rollout_control.core.models import ApiToken, AuditEntry
from tests.processes import ROOT

pytestmark = pytest.mark.django_db


def test_load_demo__plans_part_way_with_history_and_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "admin " in out and "client API token: rc_" in out and "ingest API token: rc_" in out
    release = RolloutPlan.objects.get(name="Stripboard scenes")
    onboarding = RolloutPlan.objects.get(name="IFM platform onboarding")
    assert release.status == onboarding.status == "active"
    assert release.phases.get(status="active").name == "Open beta"
    assert onboarding.phases.get(status="active").name == "Limited release"
    assert RampStep.objects.filter(target__phase__plan=release, reason="ramp").exists()
    assert release.phases.filter(status="passed").count() == 2
    assert evaluate_flag(key="ifm-platform", context={"orgId": "org-01"}).value is True
    assert evaluate_flag(key="ifm-platform", context={"orgId": "org-34"}).value is False
    assert evaluate_flag(key="scene-management", context={"targetingKey": "staff-1"}).value is True
    assert (
        metric_value(
            name="error_rate", window=timedelta(hours=24), filters={"flag": "scene-management"}
        ).status
        == "ok"
    )
    assert (
        metric_value(
            name="adoption", window=timedelta(days=2), filters={"flag": "scene-management"}
        ).status
        == "ok"
    )
    call_command("load_demo")  # again: new passwords, same demo
    assert RolloutPlan.objects.count() == 2


def test_load_demo__feedback_queue_populated(capsys: pytest.CaptureFixture[str]) -> None:
    from feedback.models import FeedbackItem

    call_command("load_demo")
    assert FeedbackItem.objects.count() == 16
    assert FeedbackItem.objects.filter(priority="critical", status="new").count() == 1
    assert FeedbackItem.objects.filter(status="in_progress").exclude(assignee=None).exists()
    blocker = FeedbackItem.objects.get(type="blocker")
    assert blocker.plan_name == "Stripboard scenes"


def _checks_every_minute(clock: time_machine.Traveller, minutes: int) -> None:
    """What beat does once a minute: the guardrail checks, then graceful degradation."""
    from phases.services import check_guardrails, degradation_check

    for _ in range(minutes):
        clock.shift(timedelta(minutes=1))
        check_guardrails(now=timezone.now())
        degradation_check(now=timezone.now())


def _load(capsys: pytest.CaptureFixture[str]) -> str:
    """Loads the demo; returns the printed ingest token."""
    call_command("load_demo")
    return re.search(r"ingest API token: (rc_\S+)", capsys.readouterr().out)[1]


def test_load_demo__an_hour_of_checks__no_automatic_rollback_pause_or_flag_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)  # a Monday, before the ramps' step hour
    with time_machine.travel(start, tick=False) as clock:
        _load(capsys)
        last_audit = AuditEntry.objects.latest("id").pk
        plans = RolloutPlan.objects.all()
        assert sorted(plans.values_list("status", flat=True)) == ["active", "active"]
        _checks_every_minute(clock, 65)  # the demo's traffic slides out of every window
        assert sorted(plans.values_list("status", flat=True)) == ["active", "active"]
        automatic = AuditEntry.objects.filter(pk__gt=last_audit, actor_type="system")
        assert not automatic.filter(object_type="flags.flag").exists()
        assert not automatic.filter(action__in=["plan.pause", "plan.rollback"]).exists()
        assert not Incident.objects.filter(created_at__gt=start).exists()
        # Healthy, not merely quiet: satisfaction has data and passes on both plans.
        satisfaction = Guardrail.objects.filter(metric="feedback_satisfaction")
        assert [g.last_verdict for g in satisfaction] == ["pass", "pass"]
        for plan in plans:
            reading = metric_value(
                name="feedback_satisfaction", window=timedelta(days=1), filters={"plan": plan.name}
            )
            assert reading.status == "ok" and reading.value >= 4.2 and reading.samples >= 6


def test_load_demo__readme_breach_curl_with_ingest_token__rolled_back_after_three_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Breaking the demo on purpose", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "curl -s -X POST http://127.0.0.1:8000/api/v1/metrics/" in block
    assert '-H "Authorization: Bearer $INGEST_TOKEN"' in block
    # The body exactly as the shell builds it: curl replaced by a function printing its -d.
    fake_curl = 'curl() { while [ $# -gt 0 ]; do [ "$1" = -d ] && printf %s "$2"; shift; done; }\n'
    body = subprocess.run(
        ["bash", "-c", fake_curl + block], capture_output=True, text=True, check=True
    ).stdout
    with time_machine.travel(datetime(2026, 3, 3, 14, 0, tzinfo=UTC), tick=False) as clock:
        token = _load(capsys)
        assert ApiToken.objects.get(name="demo-ingest", revoked_at=None).scope == "ingest"
        _checks_every_minute(clock, 10)  # someone reads the README first
        api = APIClient()
        response = api.post(
            "/api/v1/metrics/",
            json.loads(body),
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code in (200, 201, 202), response.content
        _checks_every_minute(clock, 2)
        assert set(RolloutPlan.objects.values_list("status", flat=True)) == {"active"}
        _checks_every_minute(clock, 1)  # GUARDRAIL_INTERVAL_SECONDS x failures_to_act (3)
        assert set(RolloutPlan.objects.values_list("status", flat=True)) == {"rolled_back"}
        assert set(Incident.objects.values_list("trigger", flat=True)) == {"error_rate_spike"}
