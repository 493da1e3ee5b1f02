"""Ramps and admissions, exactly once: same date twice, two threads, a three-day gap, DST."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from flags.models import Flag
from phases import services
from phases.models import RampSkip, RampStep, RolloutPlan
from phases.services.flagops import flag_current_bp
from tests.phases.conftest import COHORTS, SYSTEM, make_user

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # before the 9:00 step hour


def _ramp_plan(
    tz: str = "UTC", step_hour: int = 9, weekdays: list[int] | None = None
) -> RolloutPlan:
    definition = {
        "flags": ["f"],
        "allowed_weekdays": weekdays or list(range(7)),
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 50}]}
        ],
    }
    plan = services.plan_create(
        name="ramp",
        definition=definition,
        flags={"f": "ramped"},
        actor=SYSTEM,
        timezone_name=tz,
        step_hour=step_hour,
    )
    return plan


@pytest.fixture
def ramped(db: None) -> None:
    from flags import services as flag_services

    flag_services.flag_create(key="ramped", actor=SYSTEM)


def _pct() -> int:
    return flag_current_bp("ramped", None)


@pytest.mark.django_db
def test_activate__sets_start_and_counts_as_todays_step(ramped: None) -> None:
    plan = _ramp_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY + timedelta(hours=2))
    assert _pct() == 1000
    assert services.advance_ramps(now=MONDAY + timedelta(hours=3)) == {"stepped": 0}
    assert _pct() == 1000
    assert services.advance_ramps(now=MONDAY + timedelta(days=1, hours=2)) == {"stepped": 1}
    assert _pct() == 2000


@pytest.mark.django_db
def test_advance__called_twice_same_day__one_step(ramped: None) -> None:
    plan = _ramp_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)
    tuesday = MONDAY + timedelta(days=1, hours=1, minutes=15)
    for minutes in (0, 15, 30, 600):
        services.advance_ramps(now=tuesday + timedelta(minutes=minutes))
    assert _pct() == 2000
    assert RampStep.objects.filter(reason="ramp").count() == 1


@pytest.mark.django_db
def test_advance__before_step_hour__no_step(ramped: None) -> None:
    services.plan_activate(plan=_ramp_plan(), actor=SYSTEM, now=MONDAY)
    services.advance_ramps(now=MONDAY + timedelta(days=1))  # 08:00 Tuesday
    assert _pct() == 1000


@pytest.mark.django_db
def test_advance__three_day_outage__one_step_not_three(ramped: None) -> None:
    services.plan_activate(plan=_ramp_plan(), actor=SYSTEM, now=MONDAY)
    services.advance_ramps(now=MONDAY + timedelta(days=4, hours=2))
    assert _pct() == 2000


@pytest.mark.django_db
def test_advance__stops_at_target(ramped: None) -> None:
    services.plan_activate(plan=_ramp_plan(), actor=SYSTEM, now=MONDAY)
    for day in range(1, 10):
        services.advance_ramps(now=MONDAY + timedelta(days=day, hours=2))
    assert _pct() == 5000
    assert RampStep.objects.filter(reason="ramp").count() == 4


@pytest.mark.django_db
def test_advance__disallowed_weekday_and_freeze_window__skipped_and_logged(ramped: None) -> None:
    plan = _ramp_plan(weekdays=[0, 1, 2, 3, 4])
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)
    saturday = MONDAY + timedelta(days=5, hours=2)
    services.advance_ramps(now=saturday)
    assert _pct() == 1000
    assert (
        RampSkip.objects.get(local_date=saturday.date()).reason == "Saturday is not an allowed day"
    )
    plan.freeze_windows.create(
        starts_at=MONDAY + timedelta(days=7),
        ends_at=MONDAY + timedelta(days=8),
        reason="launch week",
    )
    services.advance_ramps(now=MONDAY + timedelta(days=7, hours=2))
    assert _pct() == 1000
    assert (
        "launch week" in RampSkip.objects.get(local_date=(MONDAY + timedelta(days=7)).date()).reason
    )
    services.advance_ramps(now=MONDAY + timedelta(days=8, hours=2))
    assert _pct() == 2000


@pytest.mark.django_db
def test_advance__held_or_paused__no_step(ramped: None) -> None:
    plan = _ramp_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)
    services.plan_set_held(plan=plan, reason="error_rate failing", actor=SYSTEM)
    services.advance_ramps(now=MONDAY + timedelta(days=1, hours=2))
    assert _pct() == 1000
    assert "held" in RampSkip.objects.get().reason
    services.plan_set_held(plan=plan, reason="", actor=SYSTEM)
    services.plan_pause(plan=plan, actor=SYSTEM, reason="looking into it")
    services.advance_ramps(now=MONDAY + timedelta(days=2, hours=2))
    assert _pct() == 1000
    services.plan_resume(plan=plan, actor=SYSTEM)
    services.advance_ramps(now=MONDAY + timedelta(days=3, hours=2))
    assert _pct() == 2000


@pytest.mark.django_db
def test_advance__berlin_across_dst__one_step_per_local_day(ramped: None) -> None:
    # Europe/Berlin springs forward at 02:00 on 2026-03-29 (a Sunday).
    plan = _ramp_plan(tz="Europe/Berlin", step_hour=1)
    start = datetime(2026, 3, 27, 23, 30, tzinfo=UTC)  # 00:30 local on the 28th
    services.plan_activate(plan=plan, actor=SYSTEM, now=start)
    moment = start
    while moment < datetime(2026, 3, 30, 22, 0, tzinfo=UTC):  # through the 30th, local
        services.advance_ramps(now=moment)
        moment += timedelta(minutes=15)
    steps = list(
        RampStep.objects.filter(reason="ramp")
        .order_by("local_date")
        .values_list("local_date", flat=True)
    )
    assert [d.isoformat() for d in steps] == ["2026-03-29", "2026-03-30"]
    assert _pct() == 3000


@pytest.mark.django_db(transaction=True)
def test_advance__two_threads_at_once__one_step_per_day(ramped: None) -> None:
    plan = _ramp_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)
    errors: list[BaseException] = []
    for day in range(1, 5):
        now = MONDAY + timedelta(days=day, hours=2)
        barrier = threading.Barrier(2)

        def worker(now: datetime = now, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                services.advance_ramps(now=now)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert RampStep.objects.filter(reason="ramp").count() == 4
    assert _pct() == 5000
    from rollout_control.core.models import AuditEntry

    ramp_updates = AuditEntry.objects.filter(
        action="flag.update", reason__contains="daily ramp"
    ).count()
    assert ramp_updates == 4


@pytest.mark.django_db
def test_manual_change__pauses_the_plan_and_says_so(ramped: None) -> None:
    from flags import services as flag_services
    from rollout_control.core.actors import Actor

    plan = _ramp_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)
    flag_services.flag_set_percentage(
        key="ramped", percentage=30, actor=Actor(type="user", label="rita")
    )
    plan.refresh_from_db()
    assert plan.status == "paused"
    assert "changed by hand by rita" in plan.status_reason


@pytest.mark.django_db
def test_flag__in_two_live_plans__refused(ramped: None) -> None:
    from phases.exceptions import PlanConflict

    services.plan_activate(plan=_ramp_plan(), actor=SYSTEM, now=MONDAY)
    second = _ramp_plan()
    with pytest.raises(PlanConflict):
        services.plan_activate(plan=second, actor=SYSTEM, now=MONDAY)
    second.refresh_from_db()
    assert second.status == "draft"


@pytest.mark.django_db
def _on_via_ofrep(token: str, orgs: list[str]) -> set[str]:
    import json

    from django.test import Client

    client, on = Client(), set()
    for org in orgs:
        response = client.post(
            "/ofrep/v1/evaluate/flags/platform",
            json.dumps({"context": {"orgId": org}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200, response.content
        if response.json()["value"]:
            on.add(org)
    return on


def test_tenant_onboarding__admits_3_then_3_3_4_then_6_up_to_all(client_token: str) -> None:
    from flags import services as flag_services

    orgs = [f"org-{n:02d}" for n in range(1, 35)]
    flag_services.cohort_create(key="dev", name="Dev team", actor=SYSTEM, match_attribute="orgId")
    flag_services.cohort_members_add(key="dev", units=["org-dev"], actor=SYSTEM)
    flag_services.cohort_create(
        key="nonprofits", name="Nonprofits", actor=SYSTEM, match_attribute="orgId"
    )
    flag_services.flag_create(key="platform", actor=SYSTEM)
    plan = services.plan_create_from_template(
        template_key="tenant-onboarding",
        name="IFM MVP",
        actor=SYSTEM,
        flags={"platform": "platform"},
        cohorts={"dev_team": "dev", "organisations": "nonprofits"},
        waiting_lists={"organisations": orgs},
    )
    assert Flag.objects.get(name="platform").stickiness == "orgId"
    with time_machine.travel(MONDAY, tick=False):
        services.plan_activate(plan=plan, actor=SYSTEM, now=MONDAY)

    def admitted() -> list[str]:
        from flags.models import CohortMember

        return sorted(
            CohortMember.objects.filter(cohort__key="nonprofits").values_list("unit", flat=True)
        )

    signers = [make_user("rm-2", "release_manager"), make_user("sup-1", "support")]

    def go(when: datetime) -> None:
        phase = plan.phases.get(status="active")
        for signer in signers:
            services.sign_off(phase=phase, user=signer)
        services.decide(
            phase=phase,
            kind="go",
            user=_rm(),
            comment="ok",
            override_reason="test: criteria waived",
            now=when,
        )

    sizes = []
    day = MONDAY
    everyone = [*orgs, "org-99", "org-dev"]
    assert _on_via_ofrep(client_token, everyone) == {"org-dev"}
    go(day)  # internal testing → pilot: the first 3 at once
    sizes.append(len(admitted()))
    assert _on_via_ofrep(client_token, everyone) == {"org-dev", "org-01", "org-02", "org-03"}
    for _ in range(3):  # the pilot's cap is 3: later weeks admit nobody
        day += timedelta(days=7)
        services.admit_cohorts(now=day + timedelta(hours=2))
    sizes.append(len(admitted()))
    go(day)  # → limited release: 3 now, then 3, then 4, then the cap of 10 holds
    for _ in range(4):
        day += timedelta(days=7)
        services.admit_cohorts(now=day + timedelta(hours=2))
        services.admit_cohorts(now=day + timedelta(hours=5))  # twice in a week: still one batch
        sizes.append(len(admitted()))
    go(day)  # → full production: 6 at once, then 6 a week until all 34 are in
    sizes.append(len(admitted()))
    while len(admitted()) < 34 and day < MONDAY + timedelta(days=200):
        day += timedelta(days=7)
        services.admit_cohorts(now=day + timedelta(hours=2))
        sizes.append(len(admitted()))
    # pilot: 3 (cap 3); limited release: +3 at start, +3, +4, then its cap of 10; full: +6 a week
    assert sizes == [3, 3, 9, 13, 13, 13, 19, 25, 31, 34]
    assert admitted() == sorted(orgs)
    assert _on_via_ofrep(client_token, everyone) == {*orgs, "org-dev"}


def _rm() -> object:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, created = get_user_model().objects.get_or_create(username="decider")
    if created:
        user.groups.add(Group.objects.get(name="release_manager"))
    return user


assert COHORTS  # shared fixtures module is imported for its helpers
