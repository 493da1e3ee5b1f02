""" "Why does this unit see this?": the deciding rule, the bucket against the threshold, and when
the unit's answer last changed, replayed from the audit log."""

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from flags import services as flags
from flags.evaluation import bucket
from flags.selectors import evaluate_flag
from phases.models import RolloutPlan
from rollout_control.dashboard.explain import flag_answer, unit_report
from tests.phases.conftest import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout(db: None) -> None:
    flags.cohort_create(key="beta", name="Beta", actor=SYSTEM)
    flags.cohort_members_add(key="beta", units=["b1"], actor=SYSTEM)
    flags.flag_create(key="checkout", actor=SYSTEM, rollout_percentage=30)
    flags.flag_update(
        key="checkout",
        actor=SYSTEM,
        changes={"cohort_rules": [flags.CohortRuleInput("beta", 100)]},
    )


def test_explain__default_percentage__bucket_against_threshold_matches_evaluation(
    rollout: None,
) -> None:
    for unit in [f"user-{n}" for n in range(40)]:
        answer = flag_answer(key="checkout", context={"targetingKey": unit})
        assert answer.rule == "percentage"
        assert answer.bucket == bucket("checkout", unit)
        assert answer.threshold == 3000
        assert answer.value == (answer.bucket < 3000)
        assert answer.value == evaluate_flag(key="checkout", context={"targetingKey": unit}).value
        assert f"bucket {answer.bucket} is" in answer.explanation


def test_explain__cohort_member__cohort_rule_decides(rollout: None) -> None:
    answer = flag_answer(key="checkout", context={"targetingKey": "b1"})
    assert (answer.rule, answer.cohort, answer.value, answer.threshold) == (
        "cohort",
        "beta",
        True,
        10_000,
    )
    assert answer.cohorts == ["beta"]
    assert answer.bucket is None  # 100 %: no bucketing
    assert "at 100 %, so on" in answer.explanation


def test_explain__kill_switch_exclusion_and_forced_on(rollout: None) -> None:
    flags.flag_update(key="checkout", actor=SYSTEM, changes={"excluded_units": ["bad"]})
    answer = flag_answer(key="checkout", context={"targetingKey": "bad"})
    assert (answer.rule, answer.value) == ("exclusion", False)
    flags.flag_update(key="checkout", actor=SYSTEM, changes={"forced_on": True})
    assert flag_answer(key="checkout", context={"targetingKey": "x"}).rule == "forced on"
    flags.flag_set_kill_switch(key="checkout", killed=True, actor=SYSTEM, reason="r")
    answer = flag_answer(key="checkout", context={"targetingKey": "x"})
    assert (answer.rule, answer.value) == ("kill switch", False)


def test_explain__missing_unit__error_explained(rollout: None) -> None:
    answer = flag_answer(key="checkout", context={})
    assert answer.rule == "error"
    assert "TARGETING_KEY_MISSING" in answer.explanation


def test_last_change__ramp_crosses_the_bucket__that_change_named(rollout: None) -> None:
    unit = next(f"u{n}" for n in range(10_000) if 5000 <= bucket("checkout", f"u{n}") < 6000)
    with time_machine.travel("2030-01-02 10:00Z", tick=False):
        flags.flag_set_percentage(key="checkout", percentage=50, actor=SYSTEM, reason="ramp 50")
    with time_machine.travel("2030-01-03 10:00Z", tick=False):
        flags.flag_set_percentage(key="checkout", percentage=60, actor=SYSTEM, reason="ramp 60")
    with time_machine.travel("2030-01-04 10:00Z", tick=False):
        flags.flag_set_percentage(key="checkout", percentage=70, actor=SYSTEM, reason="ramp 70")
    answer = unit_report(unit=unit, context={"targetingKey": unit}).answers[0]
    assert answer.value is True
    assert answer.last_change is not None
    assert answer.last_change.reason == "ramp 60"  # 50 % left it off; 60 % turned it on
    assert answer.last_change.value is True
    assert answer.last_change.at.isoformat().startswith("2030-01-03T10:00")


def test_last_change__unit_joins_cohort__the_join_named(rollout: None) -> None:
    unit = next(f"u{n}" for n in range(10_000) if bucket("checkout", f"u{n}") >= 3000)
    flags.cohort_members_add(key="beta", units=[unit], actor=SYSTEM)
    answer = unit_report(unit=unit, context={"targetingKey": unit}).answers[0]
    assert answer.value is True
    assert answer.last_change.what == "unit added to cohort beta"


def test_last_change__never_flipped__says_unchanged(rollout: None) -> None:
    unit = next(f"u{n}" for n in range(10_000) if bucket("checkout", f"u{n}") >= 9000)
    flags.flag_set_percentage(key="checkout", percentage=40, actor=SYSTEM)
    answer = unit_report(unit=unit, context={"targetingKey": unit}).answers[0]
    assert answer.last_change is None
    assert answer.history_note.startswith("Unchanged since")


def test_why_page__plan_flag__shows_plan_phase_bucket_and_feedback_link(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.get(reverse("dashboard:why"), {"unit": "dev-1", "kind": "user"})
    page = response.content.decode()
    report = response.context["report"]
    scenes = next(a for a in report.answers if a.key == "scenes")
    assert (scenes.value, scenes.rule, scenes.cohort) == (True, "cohort", "internal")
    assert (scenes.plan, scenes.phase, scenes.plan_id) == (
        "Stripboard",
        "Internal testing",
        plan.pk,
    )
    assert report.cohorts == ["internal"]
    assert f'href="/plans/{plan.pk}/"' in page
    assert "/feedback/?unit=dev-1" in page


def test_why_page__organisation_with_extra_attributes__merged_context(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.get(
        reverse("dashboard:why"), {"unit": "org-7", "kind": "org", "extra": '{"plan": "pro"}'}
    )
    assert response.context["report"].context == {"plan": "pro", "orgId": "org-7"}


def test_why_page__extra_not_an_object__error_shown(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.get(reverse("dashboard:why"), {"unit": "u", "extra": "[1]"})
    assert response.context["report"] is None
    assert "Enter a JSON object" in response.content.decode()


def test_evaluation_tester__partial__value_and_reason(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.get(
        reverse("dashboard:flag_evaluate", args=["scenes"]),
        {"context": '{"targetingKey": "dev-2"}'},
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="tester-result"')
    assert "TARGETING_MATCH" in page and ">on<" in page
    bad = manager_client.get(
        reverse("dashboard:flag_evaluate", args=["scenes"]), {"context": "{nope"}
    )
    assert "Not valid JSON" in bad.content.decode()
