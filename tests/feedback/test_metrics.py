"""The metrics gates and guardrails read from feedback, through monitoring's registry."""

from datetime import timedelta

import pytest
import time_machine

from feedback import services
from feedback.providers import FeedbackProvider
from monitoring.models import MetricDefinition
from monitoring.providers import provider_for
from monitoring.selectors import metric_value
from phases import services as phase_services
from phases.models import RolloutPlan
from rollout_control.core.actors import Actor
from tests.feedback.conftest import FLAG, PLAN, START, SYSTEM, ZERO_CRITICAL, file, make_plan

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def _value(name: str, window: timedelta, **filters: str) -> tuple[str, float | None, int]:
    result = metric_value(name=name, window=window, filters=filters)
    return result.status, result.value, result.samples


def test_provider__registered_at_start_up() -> None:
    assert isinstance(provider_for("feedback"), FeedbackProvider)


def test_open_critical__counts_open_items_however_old__zero_is_an_answer() -> None:
    with time_machine.travel(START, tick=False) as clock:
        assert _value("feedback_open_critical", DAY) == ("ok", 0.0, 0)
        blocker = file(type="blocker")
        file(type="bug")  # high, not critical
        clock.shift(timedelta(days=3))
        # Filed three days ago, still open: counts in a one-day window.
        assert _value("feedback_open_critical", DAY) == ("ok", 1.0, 1)
        for status in ("triaged", "resolved"):
            services.feedback_transition(item=blocker, status=status, actor=SYSTEM)
        clock.shift(timedelta(hours=1))
        assert _value("feedback_open_critical", DAY) == ("ok", 0.0, 0)
        # A window ending before the fix still saw it open.
        past = metric_value(
            name="feedback_open_critical", window=DAY, now=START + timedelta(days=2)
        )
        assert past.value == 1.0


@pytest.mark.usefixtures("beta_flag")
def test_satisfaction__mean_rating_in_window_per_flag(settings: object) -> None:
    settings.SATISFACTION_MIN_UNITS = 1  # the mean and the window here; the minimum below
    with time_machine.travel(START, tick=False) as clock:
        file(type="praise", rating=1, unit="u-0")  # outside the window below
        clock.shift(timedelta(days=2))
        assert _value("feedback_satisfaction", DAY)[0] == "insufficient_data"
        file(type="praise", rating=5, unit="u-1")
        file(type="usability", rating=4, unit="u-2")
        file(type="bug", unit="u-3")  # no rating: not a sample
        file(type="bug", rating=2, flag_key="other", unit="u-4")
        assert _value("feedback_satisfaction", DAY) == ("ok", pytest.approx(11 / 3), 3)
        assert _value("feedback_satisfaction", DAY, flag="other") == ("ok", 2.0, 1)


@pytest.mark.usefixtures("beta_flag")
def test_satisfaction__filtered_by_plan_and_phase(settings: object) -> None:
    settings.SATISFACTION_MIN_UNITS = 1
    plan = make_plan()
    phase_services.plan_activate(plan=plan, actor=SYSTEM)
    file(type="praise", rating=5, flag_key=FLAG, unit="u-beta")
    file(type="praise", rating=3, flag_key="other", unit="u-other")
    assert _value("feedback_satisfaction", DAY, plan=PLAN) == ("ok", 5.0, 1)
    assert _value("feedback_satisfaction", DAY, plan=PLAN, phase="Closed beta")[1] == 5.0
    assert _value("feedback_satisfaction", DAY, phase="Open beta")[0] == "insufficient_data"
    assert _value("feedback_satisfaction", DAY)[1] == 4.0


def test_satisfaction__four_distinct_raters__insufficient_five__a_value() -> None:
    with time_machine.travel(START, tick=False) as clock:
        for n, rating in enumerate([5, 4, 4, 3]):
            file(type="praise", rating=rating, unit=f"u-{n}")
            clock.shift(timedelta(minutes=1))
        assert _value("feedback_satisfaction", DAY) == ("insufficient_data", None, 4)
        file(type="praise", rating=2, unit="u-4")
        assert _value("feedback_satisfaction", DAY) == ("ok", pytest.approx(18 / 5), 5)


def test_satisfaction__unit_rating_twice__counts_its_latest_rating_once() -> None:
    with time_machine.travel(START, tick=False) as clock:
        for n in range(5):
            file(type="praise", rating=4, unit=f"u-{n}")
        clock.shift(timedelta(minutes=1))
        file(type="bug", rating=1, unit="u-0")  # u-0 changed its mind: 1 replaces 4
        clock.shift(timedelta(minutes=1))
        for _ in range(20):  # a flood from one unit is still one rater
            file(type="bug", rating=1, unit="u-1")
        assert _value("feedback_satisfaction", DAY) == ("ok", pytest.approx(14 / 5), 5)


def test_satisfaction__no_unit__one_rater_per_org_or_submitter(settings: object) -> None:
    settings.SATISFACTION_MIN_UNITS = 2
    for _ in range(5):
        file(type="praise", rating=5)  # same submitter, no unit or org: one rater
    assert _value("feedback_satisfaction", DAY) == ("insufficient_data", None, 1)
    file(type="praise", rating=1, org="org-a")
    file(type="praise", rating=3, org="org-a")
    assert _value("feedback_satisfaction", DAY) == ("ok", 4.0, 2)


def test_satisfaction__minimum_from_setting(settings: object) -> None:
    settings.SATISFACTION_MIN_UNITS = 3
    for n in range(3):
        file(type="praise", rating=5, unit=f"u-{n}")
    assert _value("feedback_satisfaction", DAY) == ("ok", 5.0, 3)
    settings.SATISFACTION_MIN_UNITS = 4
    assert _value("feedback_satisfaction", DAY)[0] == "insufficient_data"


def test_items_per_day__over_the_window() -> None:
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(6):
            file()
            clock.shift(timedelta(hours=6))
        assert _value("feedback_items_per_day", 2 * DAY) == ("ok", 3.0, 6)
        clock.shift(timedelta(days=5))
        assert _value("feedback_items_per_day", DAY) == ("insufficient_data", None, 0)


def test_answered_in_time__share_of_decided_items(support_user: object) -> None:
    actor = Actor.for_user(support_user)
    with time_machine.travel(START, tick=False) as clock:
        in_time, late = file(type="blocker"), file(type="blocker")
        file(type="blocker")  # never answered: missed once due
        clock.shift(timedelta(minutes=30))
        services.feedback_comment(item=in_time, text="Looking", actor=actor)
        file(type="praise")  # due in 3 days: not decided yet
        clock.shift(timedelta(hours=2))
        services.feedback_transition(item=late, status="triaged", actor=actor)
        assert _value("feedback_answered_in_time", DAY) == ("ok", pytest.approx(1 / 3), 3)


def test_gate__zero_open_critical_fails_on_a_blocker_then_passes_after_triage(
    beta_flag: str, support_user: object
) -> None:
    plan = make_plan(criteria=[ZERO_CRITICAL | {"filters": {"plan": PLAN}}])
    phase_services.plan_activate(plan=plan, actor=SYSTEM)
    phase = plan.phases.get(status="active")
    blocker = file(type="blocker", text="Export loses scenes", flag_key=FLAG, unit="u-beta")
    file(type="blocker", text="Elsewhere")  # not this plan's: the plan filter leaves it out

    review = phase_services.evaluate_gate(phase=phase, actor=SYSTEM)
    [result] = review.results
    assert (review.passed, result["verdict"], result["observed"]) == (False, "fail", 1.0)

    # Support triages: reproduced, but a workaround exists, so it is no longer critical.
    actor = Actor.for_user(support_user)
    services.feedback_transition(item=blocker, status="triaged", actor=actor)
    assert not phase_services.evaluate_gate(phase=phase, actor=SYSTEM).passed  # still critical
    services.feedback_set_priority(
        item=blocker, priority="high", reason="Workaround: export per day", actor=actor
    )

    review = phase_services.evaluate_gate(phase=phase, actor=SYSTEM)
    [result] = review.results
    assert (review.passed, result["verdict"], result["observed"]) == (True, "pass", 0.0)


def test_gate__template_criterion__reads_only_its_own_plans_feedback(
    live_plan: RolloutPlan,
) -> None:
    """Plan creation scopes feedback criteria to the plan: another product's blocker does not
    fail this plan's gate."""
    phase = live_plan.phases.get(status="active")
    assert phase_services.evaluate_gate(phase=phase, actor=SYSTEM).passed
    file(type="blocker", text="Some other product")
    assert phase_services.evaluate_gate(phase=phase, actor=SYSTEM).passed


def test_prometheus__queue_size_and_overdue_items_at_scrape_time(client: object) -> None:
    with time_machine.travel(START, tick=False) as clock:
        file(type="blocker")
        file(type="bug")
        spam = file(type="praise")
        services.feedback_transition(item=spam, status="closed", actor=SYSTEM)
        clock.shift(timedelta(hours=2))
        body = client.get("/metrics").content.decode()
    assert 'rollout_control_feedback_open_items{priority="critical"} 1.0' in body
    assert 'rollout_control_feedback_open_items{priority="low"} 0.0' in body
    assert "rollout_control_feedback_overdue_items 1.0" in body
    assert 'rollout_control_feedback_items_total{priority="critical",type="blocker"}' in body


def test_definition_with_min_samples_zero__no_items__count_and_rate_answer_means_do_not() -> None:
    MetricDefinition.objects.filter(source="feedback").update(min_samples=0)
    assert _value("feedback_items_per_day", DAY) == ("ok", 0.0, 0)
    assert _value("feedback_open_critical", DAY) == ("ok", 0.0, 0)
    assert _value("feedback_satisfaction", DAY)[0] == "insufficient_data"
    assert _value("feedback_answered_in_time", DAY)[0] == "insufficient_data"
