"""The phases admin: plan actions through services, read-only history, and the gate page."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flags import services as flag_services
from phases import services
from phases.models import (
    ChecklistItem,
    Decision,
    GateReview,
    Phase,
    RampStep,
    RolloutPlan,
    SignOff,
)
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM, make_user, two_flag_release

pytestmark = pytest.mark.django_db
COHORT_MAP = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}
CHECKLIST = ["Security review cleared", "Documentation complete"]


def _plan(flags: dict, name: str = "Stripboard", *, activate: bool = True) -> RolloutPlan:
    definition = two_flag_release()
    definition["phases"][0]["checklist"] = CHECKLIST
    plan = services.plan_create(
        name=name, definition=definition, flags=flags, actor=SYSTEM, cohorts=COHORT_MAP
    )
    if activate:
        services.plan_activate(plan=plan, actor=SYSTEM)
    return plan


def _staff(user: Any) -> Any:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def _login(user: Any) -> Client:
    client = Client()
    client.force_login(_staff(user))
    return client


def _active(plan: RolloutPlan) -> Phase:
    return plan.phases.get(status=Phase.Status.ACTIVE)


def _gate(phase: Phase) -> str:
    return reverse("admin:phases_phase_gate", args=[phase.pk])


def _decide(phase: Phase) -> str:
    return reverse("admin:phases_phase_decide", args=[phase.pk])


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def plan(release_flags: dict) -> RolloutPlan:
    return _plan(release_flags)


@pytest.fixture
def ann(managers: tuple) -> Client:
    return _login(managers[0])


@pytest.fixture
def sue(supporter: Any) -> Client:
    return _login(supporter)


# The gate page -------------------------------------------------------------------------------


def test_gate_page__release_manager__criteria_checklist_signoffs_and_decisions(
    plan: RolloutPlan, ann: Client
) -> None:
    response = ann.get(_gate(_active(plan)))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Gate: Internal testing" in html
    assert "Error rate under 0.5 %" in html
    assert "Not run yet" in html
    assert "Run gate now" in html
    assert "Tick: Security review cleared" in html
    assert "Sign off as rm-ann" in html
    for label in ["GO…", "NO-GO…", "ROLLBACK…"]:
        assert label in html


def test_gate_page__support__can_view_and_sign_but_sees_no_decision_buttons(
    plan: RolloutPlan, sue: Client
) -> None:
    response = sue.get(_gate(_active(plan)))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Sign off as sue" in html
    assert "Run gate now" in html
    assert _decide(_active(plan)) not in html
    for label in ["GO…", "NO-GO…", "ROLLBACK…", "Confirm"]:
        assert label not in html


def test_gate_page__staff_without_role__forbidden(plan: RolloutPlan) -> None:
    client = _login(make_user("nobody"))
    assert client.get(_gate(_active(plan))).status_code == 403


def test_gate_page__not_staff__sent_to_the_admin_login(plan: RolloutPlan, supporter: Any) -> None:
    client = Client()
    client.force_login(supporter)
    response = client.get(_gate(_active(plan)))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("kind", ["go", "no_go", "rollback"])
def test_decide__support_posts_a_decision__403_and_nothing_recorded(
    plan: RolloutPlan, sue: Client, kind: str
) -> None:
    phase = _active(plan)
    audit_before = AuditEntry.objects.count()
    for data in ({"kind": kind}, {"kind": kind, "confirm": "1", "comment": "x"}):
        response = sue.post(_decide(phase), {**data, "override_reason": "because"})
        assert response.status_code == 403
    assert sue.get(_decide(phase)).status_code == 403
    assert not Decision.objects.exists()
    assert AuditEntry.objects.count() == audit_before
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert _active(plan).pk == phase.pk


def test_run_gate__post__records_a_review_and_shows_the_table(
    plan: RolloutPlan, ann: Client
) -> None:
    phase = _active(plan)
    response = ann.post(_gate(phase), {"op": "run"}, follow=True)
    review = GateReview.objects.get(phase=phase)
    assert review.created_by == "rm-ann"
    assert "Gate run: not every criterion passed." in _messages(response)
    html = response.content.decode()
    assert "Insufficient data" in html  # no traffic ingested
    assert "&lt; 0.005" in html
    assert "by rm-ann" in html


def test_run_gate__support__records_a_review(plan: RolloutPlan, sue: Client) -> None:
    sue.post(_gate(_active(plan)), {"op": "run"})
    assert GateReview.objects.get().created_by == "sue"


def test_gate_post__without_csrf_token__403(plan: RolloutPlan, managers: tuple) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(_staff(managers[0]))
    assert client.post(_gate(_active(plan)), {"op": "run"}).status_code == 403
    assert client.post(_decide(_active(plan)), {"kind": "go"}).status_code == 403
    assert not GateReview.objects.exists()


def test_checklist__tick_then_untick__who_and_when_shown(plan: RolloutPlan, ann: Client) -> None:
    item = ChecklistItem.objects.get(phase=_active(plan), text=CHECKLIST[0])
    response = ann.post(_gate(item.phase), {"op": "tick", "item": item.pk}, follow=True)
    item.refresh_from_db()
    assert item.ticked_by.get_username() == "rm-ann"
    assert item.ticked_at is not None
    assert f"Ticked: {CHECKLIST[0]}" in _messages(response)
    assert "Untick: Security review cleared" in response.content.decode()
    ann.post(_gate(item.phase), {"op": "untick", "item": item.pk})
    item.refresh_from_db()
    assert item.ticked_at is None


def test_checklist__item_of_another_phase__404(plan: RolloutPlan, ann: Client) -> None:
    other = ChecklistItem.objects.create(phase=plan.phases.get(position=1), text="later")
    assert ann.post(_gate(_active(plan)), {"op": "tick", "item": other.pk}).status_code == 404
    assert ann.post(_gate(_active(plan)), {"op": "tick", "item": "x"}).status_code == 404


def test_sign_off__support__recorded_once(plan: RolloutPlan, sue: Client) -> None:
    phase = _active(plan)
    response = sue.post(_gate(phase), {"op": "sign", "comment": "support ready"}, follow=True)
    signoff = SignOff.objects.get(phase=phase)
    assert (signoff.user.get_username(), signoff.role, signoff.comment) == (
        "sue",
        "support",
        "support ready",
    )
    assert "Signed off Internal testing as support." in _messages(response)
    assert "You have signed off this gate." in response.content.decode()
    again = sue.post(_gate(phase), {"op": "sign"}, follow=True)
    assert "sue has already signed off Internal testing." in _messages(again)
    assert SignOff.objects.count() == 1


def test_decide__first_post__confirmation_form_and_nothing_decided(
    plan: RolloutPlan, ann: Client
) -> None:
    response = ann.post(_decide(_active(plan)), {"kind": "go"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Confirm GO" in html
    assert "Closed beta" in html  # what GO starts
    assert 'name="override_reason"' in html
    assert not Decision.objects.exists()
    assert not GateReview.objects.exists()


def test_decide__no_go_without_comment__error_shown_nothing_recorded(
    plan: RolloutPlan, ann: Client
) -> None:
    response = ann.post(_decide(_active(plan)), {"kind": "no_go", "confirm": "1", "comment": " "})
    assert response.status_code == 200
    assert "Say why: a NO-GO needs a comment." in _messages(response)
    assert "Confirm NO-GO" in response.content.decode()
    assert not Decision.objects.exists()


def test_decide__no_go_with_comment__recorded_phase_stays(plan: RolloutPlan, ann: Client) -> None:
    phase = _active(plan)
    response = ann.post(
        _decide(phase), {"kind": "no_go", "confirm": "1", "comment": "error rate 2 %"}
    )
    assert response.status_code == 302
    assert response["Location"] == _gate(phase)
    decision = Decision.objects.get()
    assert (decision.kind, decision.comment) == ("no_go", "error rate 2 %")
    assert _active(plan).pk == phase.pk


def test_decide__go_without_override__gate_failing_shown_nothing_changed(
    plan: RolloutPlan, ann: Client, managers: tuple
) -> None:
    phase = _active(plan)
    services.sign_off(phase=phase, user=managers[1])
    response = ann.post(_decide(phase), {"kind": "go", "confirm": "1", "comment": "ship"})
    assert response.status_code == 200
    [message] = _messages(response)
    assert message.startswith("GO needs a written override")
    assert not Decision.objects.exists()
    assert not GateReview.objects.exists()  # the review GO ran was rolled back with it
    assert _active(plan).pk == phase.pk


def test_decide__go_with_override__next_phase_starts(
    plan: RolloutPlan, ann: Client, managers: tuple
) -> None:
    phase = _active(plan)
    services.sign_off(phase=phase, user=managers[1])
    response = ann.post(
        _decide(phase),
        {"kind": "go", "confirm": "1", "comment": "ship", "override_reason": "dogfood only"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse(
        "admin:phases_rolloutplan_change", args=[plan.pk]
    )
    assert "GO recorded for Internal testing." in _messages(response)
    decision = Decision.objects.get()
    assert (decision.kind, decision.user.get_username(), decision.override_reason) == (
        "go",
        "rm-ann",
        "dogfood only",
    )
    phase.refresh_from_db()
    assert phase.status == Phase.Status.PASSED
    assert _active(plan).name == "Closed beta"
    assert "Run gate: Closed beta" in response.content.decode()


def test_decide__rollback__plan_rolled_back(plan: RolloutPlan, ann: Client) -> None:
    ann.post(_decide(_active(plan)), {"kind": "rollback", "confirm": "1", "comment": "bad"})
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ROLLED_BACK
    assert Decision.objects.get().kind == "rollback"


def test_decide__unknown_kind__nothing_decided(plan: RolloutPlan, ann: Client) -> None:
    response = ann.post(_decide(_active(plan)), {"kind": "maybe", "confirm": "1"}, follow=True)
    assert "Choose GO, NO-GO or ROLLBACK." in _messages(response)
    assert not Decision.objects.exists()


def test_gate_page__phase_not_active__read_only(plan: RolloutPlan, ann: Client) -> None:
    pending = plan.phases.get(position=1)
    html = ann.get(_gate(pending)).content.decode()
    assert "the gate can be read, not worked" in html
    assert "Run gate now" not in html
    assert "GO…" not in html
    response = ann.post(_gate(pending), {"op": "run"}, follow=True)
    assert "Closed beta is pending, not active." in _messages(response)
    assert not GateReview.objects.exists()


# Plans: the change page and actions ---------------------------------------------------------


def test_plan_change_page__links_the_active_phase_gate(plan: RolloutPlan, ann: Client) -> None:
    response = ann.get(reverse("admin:phases_rolloutplan_change", args=[plan.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{_gate(_active(plan))}"' in html
    assert "Run gate: Internal testing" in html
    assert "Limited production" in html  # the phases inline


def _action(client: Client, action: str, plans: list[RolloutPlan], **extra: str) -> Any:
    return client.post(
        reverse("admin:phases_rolloutplan_changelist"),
        {"action": action, "_selected_action": [p.pk for p in plans], **extra},
        follow=True,
    )


def test_action_activate__drafts_activated_conflicts_reported(
    release_flags: dict, ann: Client
) -> None:
    first = _plan(release_flags, "First", activate=False)
    second = _plan(release_flags, "Second", activate=False)
    response = _action(ann, "activate", [first, second])
    statuses = dict(RolloutPlan.objects.values_list("name", "status"))
    activated = [name for name, status in statuses.items() if status == "active"]
    assert len(activated) == 1  # the two plans share their flags
    texts = _messages(response)
    assert "Activated 1 plan(s)." in texts
    assert any("already belongs to the live plan" in text for text in texts)


def test_action_pause__asks_for_a_reason_then_pauses(plan: RolloutPlan, ann: Client) -> None:
    response = _action(ann, "pause", [plan])
    assert "Pause these plans" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    response = _action(ann, "pause", [plan], apply="1", reason="error spike")
    assert "Paused 1 plan(s)." in _messages(response)
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == ("paused", "error spike")


def test_action_resume__paused_resumed_draft_reported(
    plan: RolloutPlan, release_flags: dict, ann: Client
) -> None:
    services.plan_pause(plan=plan, actor=SYSTEM, reason="test")
    draft = _plan(release_flags, "Draft", activate=False)
    response = _action(ann, "resume", [plan, draft])
    texts = _messages(response)
    assert "Resumed 1 plan(s)." in texts
    assert "Draft: Only a paused plan can be resumed; this one is draft." in texts
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE


def test_actions__support__not_offered_and_refused(plan: RolloutPlan, sue: Client) -> None:
    changelist = sue.get(reverse("admin:phases_rolloutplan_changelist"))
    assert changelist.status_code == 200
    assert 'name="action"' not in changelist.content.decode()
    _action(sue, "pause", [plan], apply="1", reason="support says")
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE


def test_plan_add__from_template__draft_created_through_the_service(
    release_flags: dict, ann: Client
) -> None:
    flag_services.flag_create(key="dragdrop", actor=SYSTEM)
    url = reverse("admin:phases_rolloutplan_add")
    assert "Templates and their slots" in ann.get(url).content.decode()
    slots = "basic: scenes\ndrag_drop: dragdrop\nreporting: reports"
    cohorts = "\n".join(f"{c}: {c}" for c in COHORT_MAP)
    response = ann.post(
        url,
        {"name": "Stripboard", "template": "feature-release", "flags": slots, "cohorts": cohorts},
    )
    plan = RolloutPlan.objects.get(name="Stripboard")
    assert response["Location"] == reverse("admin:phases_rolloutplan_change", args=[plan.pk])
    assert plan.status == RolloutPlan.Status.DRAFT
    assert plan.phases.count() == 5
    assert AuditEntry.objects.filter(action="plan.create", actor_label="rm-ann").exists()


def test_plan_add__unknown_flag__error_shown_nothing_created(
    release_flags: dict, ann: Client
) -> None:
    response = ann.post(
        reverse("admin:phases_rolloutplan_add"),
        {"name": "X", "template": "feature-release", "flags": "basic: nope"},
    )
    assert response.status_code == 200
    assert "flags.basic: No flag with key &#x27;nope&#x27;." in response.content.decode()
    assert not RolloutPlan.objects.exists()


def test_plan_add__support__forbidden(release_flags: dict, sue: Client) -> None:
    assert sue.get(reverse("admin:phases_rolloutplan_add")).status_code == 403


# Read-only records ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "phase",
        "rampstep",
        "rampskip",
        "admissionbatch",
        "gatereview",
        "decision",
        "incident",
        "checkpoint",
        "plantemplate",
    ],
)
def test_read_only_models__no_add_change_or_delete(
    plan: RolloutPlan, ann: Client, model: str
) -> None:
    assert ann.get(reverse(f"admin:phases_{model}_changelist")).status_code == 200
    assert ann.get(reverse(f"admin:phases_{model}_add")).status_code == 403


def test_ramp_step__change_post_refused(plan: RolloutPlan, ann: Client) -> None:
    step = RampStep.objects.first()
    url = reverse("admin:phases_rampstep_change", args=[step.pk])
    page = ann.get(url)
    assert page.status_code == 200  # viewable
    assert 'name="_save"' not in page.content.decode()
    assert ann.post(url, {"to_bp": 0}).status_code == 403
    assert ann.post(reverse("admin:phases_rampstep_delete", args=[step.pk])).status_code == 403
    step.refresh_from_db()
    assert step.to_bp == 10000


def test_plan__change_post_refused(plan: RolloutPlan, ann: Client) -> None:
    url = reverse("admin:phases_rolloutplan_change", args=[plan.pk])
    assert ann.post(url, {"name": "renamed"}).status_code == 403
    plan.refresh_from_db()
    assert plan.name == "Stripboard"


def test_phase_page__support__targets_and_criteria_shown_read_only(
    plan: RolloutPlan, sue: Client
) -> None:
    response = sue.get(reverse("admin:phases_phase_change", args=[_active(plan).pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Error rate under 0.5 %" in html
    assert 'name="_save"' not in html


def test_plan_list__queries_do_not_grow_with_plans(release_flags: dict, ann: Client) -> None:
    url = reverse("admin:phases_rolloutplan_changelist")
    _plan(release_flags, "One")
    with CaptureQueriesContext(connection) as one:
        assert ann.get(url).status_code == 200
    for name in ["Two", "Three", "Four"]:
        _plan(release_flags, name, activate=False)
    with CaptureQueriesContext(connection) as four:
        assert "Four" in ann.get(url).content.decode()
    assert len(four) == len(one)
