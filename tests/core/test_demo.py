import pytest
from django.core.management import call_command

from flags.selectors import evaluate_flag
from monitoring.selectors import metric_value
from phases.models import RampStep, RolloutPlan

pytestmark = pytest.mark.django_db


def test_load_demo__plans_part_way_with_history_and_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import timedelta

    call_command("load_demo")
    out = capsys.readouterr().out
    assert "admin " in out and "client API token: rc_" in out
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
    assert FeedbackItem.objects.count() == 10
    assert FeedbackItem.objects.filter(priority="critical", status="new").count() == 1
    assert FeedbackItem.objects.filter(status="in_progress").exclude(assignee=None).exists()
    blocker = FeedbackItem.objects.get(type="blocker")
    assert blocker.plan_name == "Stripboard scenes"
