"""The rollback rule: a rollback only ever takes exposure away, back to the last verified safe
point (else the state before the current phase), and never clears a kill switch."""

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.evaluation import CohortSnap, FlagRuleSnap, FlagSnap, Snapshot, evaluate
from flags.exposure import Exposure, capped, exposure_of
from flags.models import Flag
from monitoring.services import samples_ingest
from phases import services
from phases.models import Checkpoint, Incident, RampStep, RolloutPlan
from phases.services.rollback import restore_point, safe_point_observe
from rollout_control.core.actors import Actor
from tests.phases.conftest import SYSTEM, verify_safe_point
from tests.races import LOCK_WAIT_TIMEOUT, HoldAfterLock, waiting_for_lock

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, after the 9:00 step hour
PERSON = Actor.system("rita")  # stands for a person: what matters is source="manual"
COHORTS = ["internal", "beta", "orgs"]
UNITS = [f"u{n}" for n in range(60)]

# --- the rule itself, as a property over random states -----------------------------------------

points = st.integers(min_value=0, max_value=10_000)


@st.composite
def exposures(draw: st.DrawFn, cohorts: list[str] | None = None) -> Exposure:
    keys = cohorts if cohorts is not None else draw(st.permutations(COHORTS))
    chosen = [key for key in keys if draw(st.booleans())]
    state = draw(st.sampled_from(["rules", "killed", "forced"]))
    return Exposure(
        basis_points=draw(points),
        rules=tuple((key, draw(points)) for key in chosen),
        killed=state == "killed",
        forced_on=state == "forced",
        excluded=frozenset(draw(st.lists(st.sampled_from(UNITS), max_size=5))),
    )


def _snapshot(exposure: Exposure) -> Snapshot:
    flag = FlagSnap(
        key="f",
        everyone=False if exposure.killed else True if exposure.forced_on else None,
        basis_points=exposure.basis_points,
        stickiness="targetingKey",
        salt="f",
        excluded_units=exposure.excluded,
        archived=False,
        rules=tuple(FlagRuleSnap(cohort, bp) for cohort, bp in exposure.rules),
        version=1,
        metadata={},
    )
    cohorts = {
        key: CohortSnap(
            key=key,
            match_attribute="targetingKey",
            members=frozenset(UNITS[index::3][:15]),
            opt_in_members=frozenset(UNITS[index + 1 :: 7]),
            conditions=(),
        )
        for index, key in enumerate(COHORTS)
    }
    return Snapshot(flags={"f": flag}, cohorts=cohorts, version=1, built_at=0.0)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_capped__any_current_and_safe_point__no_unit_gains_and_kill_switch_stays(
    data: st.DataObject,
) -> None:
    current = data.draw(exposures())
    ceiling = data.draw(exposures())
    after = capped(current, ceiling)
    now, then = _snapshot(current), _snapshot(after)
    for unit in UNITS:
        if evaluate(then, "f", {"targetingKey": unit}).value:
            assert evaluate(now, "f", {"targetingKey": unit}).value, unit
    assert after.killed or not current.killed
    assert [cohort for cohort, _ in after.rules] == [cohort for cohort, _ in current.rules]
    # and a unit the safe point had on, and that is still on, stays on where the rules that
    # decide it are the same as at the safe point
    if current.rules == ceiling.rules and not current.forced_on and not ceiling.forced_on:
        safe = _snapshot(ceiling)
        for unit in UNITS:
            kept = evaluate(safe, "f", {"targetingKey": unit}).value
            if kept and evaluate(now, "f", {"targetingKey": unit}).value:
                assert evaluate(then, "f", {"targetingKey": unit}).value, unit


# --- the same, through the services and the database ----------------------------------------------


def _as_changes(exposure: Exposure) -> dict[str, Any]:
    return {
        "rollout_percentage": Decimal(exposure.basis_points) / 100,
        "cohort_rules": [
            flag_services.CohortRuleInput(cohort, Decimal(points) / 100)
            for cohort, points in exposure.rules
        ],
        "kill_switch": exposure.killed,
        "forced_on": exposure.forced_on,
        "excluded_units": sorted(exposure.excluded),
    }


@pytest.fixture
def cohorts(db: None) -> None:
    for index, key in enumerate(COHORTS):
        flag_services.cohort_create(key=key, actor=SYSTEM)
        flag_services.cohort_members_add(key=key, units=UNITS[index::3][:15], actor=SYSTEM)


def _one_flag_plan(key: str = "f", **definition: Any) -> RolloutPlan:
    if not Flag.objects.filter(name=key).exists():
        flag_services.flag_create(key=key, actor=SYSTEM)
    spec = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {"name": "Open beta", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 90}]}
        ],
        "guardrails": [],
        **definition,
    }
    return services.plan_create(name=f"plan-{key}", definition=spec, flags={"f": key}, actor=SYSTEM)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(safe=exposures(cohorts=COHORTS), person=exposures(cohorts=COHORTS))
@pytest.mark.django_db
def test_plan_rollback__random_safe_point_then_manual_changes__nothing_gained(
    cohorts: None, safe: Exposure, person: Exposure
) -> None:
    with transaction.atomic():
        plan = _one_flag_plan()
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        flag_services.flag_update(key="f", actor=SYSTEM, changes=_as_changes(safe), source="plan")
        verify_safe_point(plan, START)
        # a person changes the flag after the safe point (this pauses the plan)
        flag_services.flag_update(key="f", actor=PERSON, changes=_as_changes(person))
        current = exposure_of(flag_services.flag_state(Flag.objects.get(name="f")))
        services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="prop")
        after = exposure_of(flag_services.flag_state(Flag.objects.get(name="f")))
        assert after == capped(current, safe)
        assert after.killed or not current.killed
        transaction.set_rollback(True)


# --- safe points ---------------------------------------------------------------------------------

ERROR_GUARDRAIL = {
    "name": "spike",
    "metric": "error_rate",
    "comparator": "gt",
    "threshold": 0.02,
    "window": "5m",
    "failures_to_act": 2,
    "action": "rollback",
    "trigger": "error_rate_spike",
}


def _traffic(errors: float, flag: str = "f") -> None:
    stamp = datetime.now(UTC).isoformat()
    samples_ingest(
        items=[
            {"metric": "requests", "value": 100, "timestamp": stamp, "labels": {"flag": flag}}
            for _ in range(20)
        ]
        + [{"metric": "errors", "value": errors, "timestamp": stamp, "labels": {"flag": flag}}]
    )


def _minutes(clock: Any, count: int, errors: float | None) -> None:
    for _ in range(count):
        clock.shift(timedelta(minutes=1))
        if errors is not None:
            _traffic(errors)
        services.check_guardrails(now=datetime.now(UTC))


@pytest.mark.django_db
def test_safe_point__passing_for_a_full_window__verified_not_before() -> None:
    with time_machine.travel(START, tick=False) as clock:
        plan = _one_flag_plan(guardrails=[ERROR_GUARDRAIL])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _minutes(clock, 5, errors=0)  # first passing check at +1, then 4 minutes more
        observed = plan.checkpoints.get(kind=Checkpoint.Kind.OBSERVED)
        assert observed.verified_at is None
        _minutes(clock, 1, errors=0)  # a full 5-minute window since the first passing check
        observed.refresh_from_db()
        assert observed.verified_at == datetime.now(UTC)
        assert observed.config["f"]["rollout_percentage"] == 10


@pytest.mark.django_db
def test_safe_point__a_failing_or_silent_check_inside_the_window__starts_over() -> None:
    with time_machine.travel(START, tick=False) as clock:
        plan = _one_flag_plan(guardrails=[ERROR_GUARDRAIL | {"failures_to_act": 9}])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _minutes(clock, 3, errors=0)
        _minutes(clock, 1, errors=500)  # fails (and, with no rollback yet, holds)
        _minutes(clock, 3, errors=0)  # only 3 clean minutes since
        assert not plan.checkpoints.filter(verified_at__isnull=False).exists()
        clock.shift(timedelta(minutes=10))  # nothing in the window: insufficient data
        services.check_guardrails(now=datetime.now(UTC))
        assert not plan.checkpoints.filter(verified_at__isnull=False).exists()


@pytest.mark.django_db
def test_safe_point__config_changes_before_verification__never_a_safe_point() -> None:
    with time_machine.travel(START, tick=False) as clock:
        plan = _one_flag_plan(guardrails=[ERROR_GUARDRAIL])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _minutes(clock, 3, errors=0)
        flag_services.flag_set_rule_percentage(
            key="f", cohort=None, basis_points=4000, actor=SYSTEM, source="plan"
        )
        _minutes(clock, 3, errors=0)
        (observed,) = plan.checkpoints.filter(kind=Checkpoint.Kind.OBSERVED)
        assert observed.config["f"]["rollout_percentage"] == 40
        assert observed.verified_at is None
        assert restore_point(plan, mode="safe_point").kind == "baseline"


@pytest.mark.django_db
def test_safe_point__no_guardrails__never_verified() -> None:
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    assert safe_point_observe(plan=plan, guardrails=[], now=START) is None
    assert not plan.checkpoints.filter(kind=Checkpoint.Kind.OBSERVED).exists()


# --- what a rollback does ---------------------------------------------------------------------


@pytest.mark.django_db
def test_rollback__kill_switch_turned_on_by_a_person__stays_on(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        plan = _one_flag_plan(guardrails=[ERROR_GUARDRAIL])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _minutes(clock, 6, errors=0)  # 10 % verified
        flag_services.flag_set_kill_switch(key="f", killed=True, actor=PERSON, reason="crashes")
        services.plan_resume(plan=plan, actor=SYSTEM)  # the manual change paused the plan
        _minutes(clock, 3, errors=500)
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    flag = Flag.objects.get(name="f")
    assert flag.everyone is False and flag.kill_switch_source == "manual"
    incident = Incident.objects.get()
    assert incident.steps[0]["action"] == "unchanged"
    assert incident.steps[0]["detail"] == "already at the safe point"
    assert "nothing to take away" in incident.restored_to["outcome"]


@pytest.mark.django_db
def test_rollback__at_the_safe_point__says_so_and_writes_no_flag() -> None:
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    verify_safe_point(plan, START)
    version = Flag.objects.get(name="f").version
    incident = services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="check")
    assert Flag.objects.get(name="f").version == version
    assert incident.restored_to["kind"] == "safe_point"
    assert incident.restored_to["outcome"].startswith("nothing to take away")
    assert [s["action"] for s in incident.steps] == ["unchanged", "team_alerted"]


@pytest.mark.django_db
def test_rollback__no_safe_point__back_to_before_the_phase_capped() -> None:
    flag_services.flag_create(key="f", actor=SYSTEM, rollout_percentage=5)
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)  # 10 %
    incident = services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="r")
    assert incident.restored_to["kind"] == "baseline"
    assert Flag.objects.get(name="f").basis_points == 500


@pytest.mark.django_db
def test_rollback__added_rule_after_safe_point__lowered_to_zero_not_removed(
    cohorts: None,
) -> None:
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    verify_safe_point(plan, START)
    flag_services.flag_update(
        key="f",
        actor=PERSON,
        changes={"cohort_rules": [flag_services.CohortRuleInput("beta", 100)]},  # type: ignore[arg-type]
    )
    services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="r")
    flag = Flag.objects.get(name="f")
    assert [(r.cohort.key, r.basis_points) for r in flag.cohort_rules.all()] == [("beta", 0)]
    assert flag.basis_points == 1000


@pytest.mark.parametrize(
    ("plan_choice", "guardrail_choice", "trigger", "killed"),
    [
        ("safe_point", "", "error_rate_spike", False),
        ("off", "", "error_rate_spike", True),
        ("safe_point", "off", "error_rate_spike", True),
        ("safe_point", "", "data_corruption_detected", True),
        ("off", "safe_point", "data_corruption_detected", False),
    ],
)
@pytest.mark.django_db
def test_rollback_to__plan_guardrail_and_trigger__off_or_safe_point(
    plan_choice: str, guardrail_choice: str, trigger: str, killed: bool
) -> None:
    guardrail = ERROR_GUARDRAIL | {
        "failures_to_act": 1,
        "trigger": trigger,
        "rollback_to": guardrail_choice,
    }
    with time_machine.travel(START, tick=False) as clock:
        plan = _one_flag_plan(guardrails=[guardrail], rollback_to=plan_choice)
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _minutes(clock, 1, errors=500)
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    flag = Flag.objects.get(name="f")
    assert (flag.everyone is False) is killed
    assert Incident.objects.get().restored_to["kind"] == ("off" if killed else "baseline")


@pytest.mark.django_db
def test_rollback_api__bad_rollback_to__400_nothing_changed(admin_api: APIClient) -> None:
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    response = admin_api.post(
        f"/api/v1/plans/{plan.pk}/rollback/",
        {"reason": "x", "rollback_to": "everything"},
        format="json",
    )
    assert response.status_code == 400
    assert "rollback_to" in response.json()["error"]["fields"]
    plan.refresh_from_db()
    assert plan.status == "active"


@pytest.mark.django_db
def test_plan_patch__rollback_to__set_and_audited(admin_api: APIClient) -> None:
    plan = _one_flag_plan()
    response = admin_api.patch(f"/api/v1/plans/{plan.pk}/", {"rollback_to": "off"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["rollback_to"] == "off"
    bad = admin_api.patch(f"/api/v1/plans/{plan.pk}/", {"rollback_to": "x"}, format="json")
    assert bad.status_code == 400 and "rollback_to" in bad.json()["error"]["fields"]


# --- preview -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_preview__per_flag_before_after_and_known_users_and_organisations_losing(
    admin_api: APIClient,
) -> None:
    flag_services.cohort_create(key="pilots", actor=SYSTEM, match_attribute="orgId")
    flag_services.cohort_members_add(key="pilots", units=["org-1", "org-2"], actor=SYSTEM)
    flag_services.cohort_create(key="staff", actor=SYSTEM)
    flag_services.cohort_members_add(key="staff", units=["ann", "bob", "cy"], actor=SYSTEM)
    flag_services.flag_create(key="f", actor=SYSTEM)
    spec = [
        {"flag": "f", "cohort": "staff", "start": 100, "target": 100},
        {"flag": "f", "cohort": "pilots", "start": 0, "step": 50, "target": 100},
    ]
    plan = services.plan_create(
        name="p",
        definition={
            "flags": ["f"],
            "cohorts": ["staff", "pilots"],
            "allowed_weekdays": list(range(7)),
            "phases": [{"name": "Pilot", "targets": spec}],
        },
        flags={"f": "f"},
        cohorts={"staff": "staff", "pilots": "pilots"},
        actor=SYSTEM,
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    verify_safe_point(plan, START)  # staff on, no pilots rule yet
    flag_services.flag_set_rule_percentage(
        key="f", cohort="pilots", basis_points=10_000, actor=SYSTEM, source="plan", add_missing=True
    )
    (row,) = admin_api.get(f"/api/v1/plans/{plan.pk}/preview/").json()["rollback"]
    assert row["flag"] == "f" and row["restores_to"].startswith("the safe point verified at")
    assert row["before"]["cohort_rules"] == [
        {"cohort": "staff", "percentage": 100},
        {"cohort": "pilots", "percentage": 100},
    ]
    assert row["after"]["cohort_rules"] == [
        {"cohort": "staff", "percentage": 100},
        {"cohort": "pilots", "percentage": 0},
    ]
    assert row["organisations_losing_count"] == 2 and row["users_losing_count"] == 0
    assert row["known_units_losing"] == ["org-1", "org-2"]
    assert Flag.objects.get(name="f").cohort_rules.get(cohort__key="pilots").basis_points == 10_000


# --- races: a ramp step or a rollback never undoes a person's change ---------------------------


def _person_holding_lock(change: Any) -> tuple[threading.Thread, HoldAfterLock, list]:
    hold, errors = HoldAfterLock(), []

    def run() -> None:
        try:
            with connections["default"].execute_wrapper(hold):
                change()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert hold.locked.wait(LOCK_WAIT_TIMEOUT), "the person's change never locked the flag"
    return thread, hold, errors


def _while_waiting(hold: HoldAfterLock, automatic: Any) -> threading.Thread:
    errors: list = []

    def run() -> None:
        try:
            automatic()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    while not waiting_for_lock() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling PostgreSQL for the waiter, not waiting for time to pass
    assert waiting_for_lock(), "the automatic action did not wait for the person's lock"
    hold.release.set()
    thread.errors = errors  # type: ignore[attr-defined]
    return thread


@pytest.mark.django_db(transaction=True)
def test_race__ramp_step_while_a_person_sets_a_cohort_to_zero__person_wins(
    cohorts: None,
) -> None:
    flag_services.flag_create(key="f", actor=SYSTEM)
    plan = services.plan_create(
        name="race",
        definition={
            "flags": ["f"],
            "cohorts": ["beta"],
            "allowed_weekdays": list(range(7)),
            "phases": [
                {
                    "name": "Beta",
                    "targets": [{"flag": "f", "cohort": "beta", "start": 10, "step": 10}],
                }
            ],
        },
        flags={"f": "f"},
        cohorts={"beta": "beta"},
        actor=SYSTEM,
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=datetime.now(UTC) - timedelta(days=1))
    person, hold, person_errors = _person_holding_lock(
        lambda: flag_services.flag_set_rule_percentage(
            key="f", cohort="beta", basis_points=0, actor=PERSON, reason="complaints"
        )
    )
    now = datetime.now(UTC).replace(hour=12)
    ramp = _while_waiting(hold, lambda: services.advance_ramps(now=now))
    person.join(LOCK_WAIT_TIMEOUT)
    ramp.join(LOCK_WAIT_TIMEOUT)
    assert person_errors == [] and ramp.errors == []  # type: ignore[attr-defined]
    flag = Flag.objects.get(name="f")
    assert flag.cohort_rules.get(cohort__key="beta").basis_points == 0
    assert not RampStep.objects.filter(reason="ramp").exists()
    assert RolloutPlan.objects.get(pk=plan.pk).status == "paused"


@pytest.mark.django_db(transaction=True)
def test_race__rollback_while_a_person_turns_the_kill_switch_on__kill_switch_stays(
    cohorts: None,
) -> None:
    plan = _one_flag_plan()
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    Checkpoint.objects.create(  # a safe point from before, with the flag on
        plan=plan,
        config={"f": flag_services.flag_state(Flag.objects.get(name="f"))},
        verified_at=START,
        passing_since=START,
    )
    person, hold, person_errors = _person_holding_lock(
        lambda: flag_services.flag_set_kill_switch(
            key="f", killed=True, actor=PERSON, reason="incident"
        )
    )
    rollback = _while_waiting(
        hold,
        lambda: services.plan_rollback(
            plan=plan, trigger="manual", actor=SYSTEM, reason="race", mode="safe_point"
        ),
    )
    person.join(LOCK_WAIT_TIMEOUT)
    rollback.join(LOCK_WAIT_TIMEOUT)
    assert person_errors == [] and rollback.errors == []  # type: ignore[attr-defined]
    assert Flag.objects.get(name="f").everyone is False
    assert RolloutPlan.objects.get(pk=plan.pk).status == "rolled_back"


# --- degradation hands back only what it took -------------------------------------------------


@pytest.mark.django_db
def test_degradation_over__a_kill_switch_a_person_turned_on_meanwhile__stays_on() -> None:
    flag_services.flag_create(key="confetti", actor=SYSTEM, tier="non_essential")
    flag_services.flag_create(key="banner", actor=SYSTEM, tier="non_essential")
    with time_machine.travel(START, tick=False) as clock:
        samples_ingest(items=[{"metric": "stress", "value": 0.85}])
        services.degradation_check(now=datetime.now(UTC))
        assert Flag.objects.get(name="confetti").kill_switch_source == "degradation"
        flag_services.flag_set_kill_switch(
            key="confetti", killed=True, actor=PERSON, reason="legal asked"
        )
        for _ in range(12):
            clock.shift(timedelta(minutes=1))
            samples_ingest(items=[{"metric": "stress", "value": 0.2}])
            services.degradation_check(now=datetime.now(UTC))
    assert Flag.objects.get(name="confetti").everyone is False
    assert Flag.objects.get(name="banner").everyone is None


@pytest.mark.django_db
def test_restart_after_off_rollback__rollback_kill_switch_released_persons_kept() -> None:
    flag_services.flag_create(key="g", actor=SYSTEM)
    plan = services.plan_create(
        name="two",
        definition={
            "flags": ["a", "b"],
            "allowed_weekdays": list(range(7)),
            "rollback_to": "off",
            "phases": [
                {
                    "name": "Beta",
                    "targets": [
                        {"flag": "a", "start": 10, "step": 10},
                        {"flag": "b", "start": 10, "step": 10},
                    ],
                }
            ],
        },
        flags={"a": _flag("f"), "b": "g"},
        actor=SYSTEM,
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    flag_services.flag_set_kill_switch(key="g", killed=True, actor=PERSON, reason="mine")
    services.plan_rollback(plan=plan, trigger="manual", actor=SYSTEM, reason="r")
    assert Flag.objects.get(name="f").kill_switch_source == "plan"
    services.plan_restart_phase(plan=plan, actor=SYSTEM, now=START + timedelta(days=1))
    assert Flag.objects.get(name="f").everyone is None  # the rollback's kill switch released
    assert Flag.objects.get(name="g").everyone is False  # the person's stays


def _flag(key: str) -> str:
    flag_services.flag_create(key=key, actor=SYSTEM)
    return key


@pytest.mark.django_db
def test_check_guardrails__one_plan_cannot_be_observed__the_next_plan_still_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from phases.services import guardrails as guardrail_services

    pause = ERROR_GUARDRAIL | {"action": "pause", "failures_to_act": 9}
    first = _one_flag_plan("f", guardrails=[pause])
    second = _one_flag_plan("g", guardrails=[pause])
    services.plan_activate(plan=first, actor=SYSTEM, now=START)
    services.plan_activate(plan=second, actor=SYSTEM, now=START)
    real = guardrail_services.safe_point_observe

    def broken_for_second(*, plan: RolloutPlan, **kwargs: Any) -> Any:
        if plan.pk == second.pk:  # plans run newest first: this one comes before `first`
            raise RuntimeError("lock timeout")
        return real(plan=plan, **kwargs)

    monkeypatch.setattr(guardrail_services, "safe_point_observe", broken_for_second)
    with time_machine.travel(START, tick=False) as clock:
        _minutes(clock, 1, errors=500)  # both failing: both must hold their ramps
    first.refresh_from_db()
    assert first.held_reason  # observed and held although the plan before it failed
    assert first.checkpoints.filter(kind="observed").exists() is False  # failing: nothing to vouch
