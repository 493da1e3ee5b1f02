"""A release manager's actions through the dashboard: each calls its service, which audits it,
and the page says what happened (or why not)."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from flags import services as flag_services
from flags.models import Flag
from monitoring.services import samples_ingest
from phases.models import Decision, GateReview, Incident, Phase, RolloutPlan
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def _version(key: str) -> int:
    return Flag.objects.get(name=key).version


def _messages(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_pause__with_reason__paused_audited_and_said(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.post(
        reverse("dashboard:plan_pause", args=[plan.pk]),
        {"reason": "support is swamped"},
        follow=True,
    )
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.PAUSED
    assert plan.status_reason == "support is swamped"
    entry = AuditEntry.objects.get(action="plan.pause")
    assert (entry.actor_label, entry.reason) == ("ann", "support is swamped")
    assert "Paused Stripboard: ramps stop until it is resumed." in _messages(response)
    assert "Resume…" in response.content.decode()


def test_pause__without_reason__refused(manager_client: Client, plan: RolloutPlan) -> None:
    response = manager_client.post(
        reverse("dashboard:plan_pause", args=[plan.pk]), {"reason": "  "}, follow=True
    )
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert any(m.startswith("Say why the plan pauses") for m in _messages(response))


def test_resume__paused_plan__active_again(manager_client: Client, plan: RolloutPlan) -> None:
    manager_client.post(reverse("dashboard:plan_pause", args=[plan.pk]), {"reason": "wait"})
    response = manager_client.post(
        reverse("dashboard:plan_resume", args=[plan.pk]), {"reason": ""}, follow=True
    )
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert "Resumed Stripboard." in _messages(response)


def test_resume__active_plan__service_refusal_shown(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.post(reverse("dashboard:plan_resume", args=[plan.pk]), follow=True)
    assert "Only a paused plan can be resumed; this one is active." in _messages(response)


def test_rollback__with_reason__flags_lowered_incident_recorded(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.post(
        reverse("dashboard:plan_rollback", args=[plan.pk]), {"reason": "crash reports"}, follow=True
    )
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ROLLED_BACK
    incident = Incident.objects.get(plan=plan)
    assert (incident.trigger, incident.reason, incident.actor_label) == (
        "manual",
        "crash reports",
        "ann",
    )
    # No safe point yet: back to the flags as they were before the plan (rules at 0 %), no kill
    # switch needed; the message says what happened.
    scenes = Flag.objects.get(name="scenes")
    assert scenes.everyone is None
    assert list(scenes.cohort_rules.values_list("basis_points", flat=True)) == [0]
    assert any(
        m.startswith("Rolled back: 1 flag(s) lowered to the flags as they were before")
        for m in _messages(response)
    ), _messages(response)
    page = response.content.decode()
    assert "Restart the rolled-back phase" in page
    assert "Rollback (Manual)" in page  # in the history


def test_rollback__without_reason__refused(manager_client: Client, plan: RolloutPlan) -> None:
    manager_client.post(reverse("dashboard:plan_rollback", args=[plan.pk]), {"reason": ""})
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert not Incident.objects.exists()


def test_restart__after_rollback__phase_active_again(
    manager_client: Client, plan: RolloutPlan
) -> None:
    manager_client.post(reverse("dashboard:plan_rollback", args=[plan.pk]), {"reason": "x"})
    response = manager_client.post(reverse("dashboard:plan_restart", args=[plan.pk]), follow=True)
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert "Restarted Internal testing." in _messages(response)


def _errors(rate_errors: int) -> None:
    now = datetime.now(UTC).isoformat()
    samples_ingest(
        items=[{"metric": "requests", "value": 50, "timestamp": now} for _ in range(20)]
        + [{"metric": "errors", "value": rate_errors, "timestamp": now}]
    )


def test_run_gate__records_a_review(manager_client: Client, plan: RolloutPlan) -> None:
    _errors(20)  # 2 %: the error-rate criterion (under 0.5 %) fails
    phase = plan.phases.get(status="active")
    response = manager_client.post(reverse("dashboard:gate_run", args=[phase.pk]), follow=True)
    review = GateReview.objects.get(phase=phase)
    assert not review.passed
    assert review.created_by == "ann"
    assert "Gate run: 0 of 1 criteria passed." in _messages(response)
    assert response.redirect_chain[-1][0].endswith(f"/plans/{plan.pk}/#gate")


def test_decide_go__failing_criterion_without_override__refused_with_reason(
    manager_client: Client, support_client: Client, plan: RolloutPlan
) -> None:
    _errors(20)
    phase = plan.phases.get(status="active")
    response = manager_client.post(
        reverse("dashboard:gate_decide", args=[phase.pk]), {"kind": "go"}, follow=True
    )
    assert any(m.startswith("GO needs a written override") for m in _messages(response))
    assert not Decision.objects.exists()


def test_decide_go__with_override_and_sign_off__next_phase_starts(
    manager_client: Client, support_client: Client, plan: RolloutPlan
) -> None:
    _errors(20)
    phase = plan.phases.get(status="active")
    from phases import services
    from tests.phases.conftest import make_user

    services.sign_off(phase=phase, user=make_user("bob", "release_manager"))
    response = manager_client.post(
        reverse("dashboard:gate_decide", args=[phase.pk]),
        {"kind": "go", "comment": "fine", "override_reason": "spike from a test harness"},
        follow=True,
    )
    assert "GO recorded for Internal testing." in _messages(response)
    decision = Decision.objects.get()
    assert (decision.kind, decision.override_reason) == ("go", "spike from a test harness")
    assert plan.phases.get(status=Phase.Status.ACTIVE).name == "Closed beta"
    assert AuditEntry.objects.filter(action="gate.decide.go", actor_label="ann").count() == 1


def test_decide_no_go__without_comment__refused(manager_client: Client, plan: RolloutPlan) -> None:
    phase = plan.phases.get(status="active")
    response = manager_client.post(
        reverse("dashboard:gate_decide", args=[phase.pk]), {"kind": "no_go"}, follow=True
    )
    assert "Say why: a NO-GO needs a comment." in _messages(response)


def test_decide__unknown_kind__refused(manager_client: Client, plan: RolloutPlan) -> None:
    phase = plan.phases.get(status="active")
    response = manager_client.post(
        reverse("dashboard:gate_decide", args=[phase.pk]), {"kind": "maybe"}, follow=True
    )
    assert not Decision.objects.exists()
    assert any("kind" in m for m in _messages(response))


def test_kill_switch__on_with_reason__flag_off_for_everyone_and_plan_paused(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.post(
        reverse("dashboard:flag_kill_switch", args=["scenes"]),
        {"killed": "on", "reason": "data loss", "version": _version("scenes")},
        follow=True,
    )
    assert Flag.objects.get(name="scenes").everyone is False
    entry = AuditEntry.objects.filter(object_type="flags.flag", action="flag.update").latest("id")
    assert (entry.actor_label, entry.reason) == ("ann", "data loss")
    assert entry.before["kill_switch"] is False and entry.after["kill_switch"] is True
    messages = _messages(response)
    assert "scenes: kill switch on — off for everyone." in messages
    assert "Plan “Stripboard”: Paused: flag 'scenes' was changed by hand by ann." in messages
    assert "Kill switch on" in response.content.decode()


def test_kill_switch__without_reason__refused(manager_client: Client, plan: RolloutPlan) -> None:
    manager_client.post(
        reverse("dashboard:flag_kill_switch", args=["scenes"]),
        {"killed": "on", "reason": "", "version": _version("scenes")},
    )
    assert Flag.objects.get(name="scenes").everyone is None


def test_kill_switch__off__rules_apply_again(manager_client: Client, plan: RolloutPlan) -> None:
    url = reverse("dashboard:flag_kill_switch", args=["scenes"])
    manager_client.post(url, {"killed": "on", "reason": "a", "version": _version("scenes")})
    manager_client.post(url, {"killed": "off", "reason": "fixed", "version": _version("scenes")})
    assert Flag.objects.get(name="scenes").everyone is None


def test_kill_switch__stale_form__refused_with_message_nothing_changed(
    manager_client: Client, plan: RolloutPlan
) -> None:
    read_at = _version("scenes")
    flag_services.flag_set_percentage(key="scenes", percentage=30, actor=SYSTEM, reason="other")
    response = manager_client.post(
        reverse("dashboard:flag_kill_switch", args=["scenes"]),
        {"killed": "on", "reason": "late", "version": read_at},
        follow=True,
    )
    assert Flag.objects.get(name="scenes").everyone is None
    assert any("reload it" in m for m in _messages(response)), _messages(response)


def test_percentage__stale_form__refused_nothing_changed(
    manager_client: Client, plan: RolloutPlan
) -> None:
    read_at = _version("scenes")
    flag_services.flag_set_kill_switch(key="scenes", killed=True, actor=SYSTEM, reason="incident")
    response = manager_client.post(
        reverse("dashboard:flag_percentage", args=["scenes"]),
        {"rule": "internal", "percentage": "40", "version": read_at},
        follow=True,
    )
    flag = Flag.objects.get(name="scenes")
    assert [r.basis_points for r in flag.cohort_rules.all()] == [10_000]
    assert any("reload it" in m for m in _messages(response)), _messages(response)


def test_percentage__default_rule__set_and_audited(
    manager_client: Client, plan: RolloutPlan
) -> None:
    response = manager_client.post(
        reverse("dashboard:flag_percentage", args=["reports"]),
        {
            "rule": "default",
            "percentage": "12.5",
            "reason": "more reporting",
            "version": _version("reports"),
        },
        follow=True,
    )
    assert Flag.objects.get(name="reports").basis_points == 1250
    assert "reports: everyone else now at 12.5 %." in _messages(response)
    page = response.content.decode()
    assert "everyone else" in page and "12.5 %" in page  # the audit diff


def test_percentage__cohort_rule__only_that_rule_changes(
    manager_client: Client, plan: RolloutPlan
) -> None:
    manager_client.post(
        reverse("dashboard:flag_percentage", args=["scenes"]),
        {"rule": "internal", "percentage": "40", "version": _version("scenes")},
    )
    flag = Flag.objects.get(name="scenes")
    rules = {r.cohort.key: r.basis_points for r in flag.cohort_rules.all()}
    assert rules == {"internal": 4000}
    assert flag.basis_points == 0


def test_percentage__unknown_rule_or_bad_number__refused(
    manager_client: Client, plan: RolloutPlan
) -> None:
    url = reverse("dashboard:flag_percentage", args=["scenes"])
    response = manager_client.post(
        url, {"rule": "paying", "percentage": "40", "version": _version("scenes")}, follow=True
    )
    assert "scenes has no rule for cohort 'paying'." in _messages(response)
    manager_client.post(url, {"rule": "default", "percentage": "101"})
    manager_client.post(url, {"rule": "default", "percentage": "1.234"})
    assert Flag.objects.get(name="scenes").basis_points == 0


def test_flag__unknown_key__404(manager_client: Client, plan: RolloutPlan) -> None:
    assert manager_client.get(reverse("dashboard:flag", args=["nope"])).status_code == 404
    assert manager_client.get(reverse("dashboard:plan", args=[999_999])).status_code == 404


def test_plan_page__rollback_dialog__shows_each_flag_now_and_after(
    manager_client: Client, plan: RolloutPlan
) -> None:
    page = manager_client.get(reverse("dashboard:plan", args=[plan.pk])).content.decode()
    dialog = page[page.index('id="dialog-rollback"') :]
    dialog = dialog[: dialog.index("</dialog>")]
    assert "the flags as they were before Internal testing began" in dialog
    assert "<code>scenes</code>" in dialog and "internal 100 %" in dialog
    assert "internal 0 %" in dialog  # after: the internal cohort's rule lowered
    assert "Known units losing it" in dialog
