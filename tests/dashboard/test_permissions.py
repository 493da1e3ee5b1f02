"""Who may see and do what: release managers everything, support staff read and sign off, users
without a role nothing; every action is a POST with CSRF protection."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from flags.models import Flag
from phases.models import Decision, GateReview, Incident, RolloutPlan, SignOff
from rollout_control.core.models import AuditEntry

pytestmark = pytest.mark.django_db


def _pages(plan: RolloutPlan) -> list[str]:
    return [
        reverse("dashboard:home"),
        reverse("dashboard:home_live"),
        reverse("dashboard:plans"),
        reverse("dashboard:plan", args=[plan.pk]),
        reverse("dashboard:flags"),
        reverse("dashboard:flag", args=["scenes"]),
        reverse("dashboard:flag_evaluate", args=["scenes"]) + '?context={"targetingKey":"u1"}',
        reverse("dashboard:why") + "?unit=dev-1&kind=user",
    ]


def _release_actions(plan: RolloutPlan) -> list[tuple[str, dict[str, str]]]:
    phase = plan.phases.get(status="active")
    go = {"kind": "go", "override_reason": "x"}
    return [
        (reverse("dashboard:plan_pause", args=[plan.pk]), {"reason": "r"}),
        (reverse("dashboard:plan_resume", args=[plan.pk]), {"reason": "r"}),
        (reverse("dashboard:plan_rollback", args=[plan.pk]), {"reason": "r"}),
        (reverse("dashboard:plan_restart", args=[plan.pk]), {}),
        (reverse("dashboard:gate_run", args=[phase.pk]), {}),
        (reverse("dashboard:gate_decide", args=[phase.pk]), go),
        (
            reverse("dashboard:flag_percentage", args=["scenes"]),
            {"rule": "default", "percentage": 5},
        ),
        (reverse("dashboard:flag_kill_switch", args=["scenes"]), {"killed": "on", "reason": "r"}),
    ]


def test_pages__release_manager__all_render(manager_client: Client, plan: RolloutPlan) -> None:
    for url in _pages(plan):
        response = manager_client.get(url)
        assert response.status_code == 200, url


def test_pages__support__all_render_read_only(support_client: Client, plan: RolloutPlan) -> None:
    for url in _pages(plan):
        assert support_client.get(url).status_code == 200, url
    plan_page = support_client.get(reverse("dashboard:plan", args=[plan.pk])).content.decode()
    assert "Sign off as sue" in plan_page
    for label in ["Pause…", "Roll back…", "Run gate", "GO…"]:
        assert label not in plan_page
    flag_page = support_client.get(reverse("dashboard:flag", args=["scenes"])).content.decode()
    assert "Turn the kill switch on" not in flag_page
    assert "Only release managers change percentages." in flag_page


def test_pages__user_without_role__forbidden(nobody_client: Client, plan: RolloutPlan) -> None:
    for url in _pages(plan):
        response = nobody_client.get(url)
        assert response.status_code == 403, url
        assert b"ask for a role" in response.content


def test_pages__anonymous__redirected_to_login(client: Client, plan: RolloutPlan) -> None:
    for url in _pages(plan):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")


def test_live_partial__anonymous_htmx_poll__redirects_the_whole_page(client: Client) -> None:
    response = client.get(reverse("dashboard:home_live"), headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/login/?next=/live/")


def test_release_actions__support__refused_and_nothing_changes(
    support_client: Client, plan: RolloutPlan
) -> None:
    audited = AuditEntry.objects.count()
    for url, data in _release_actions(plan):
        response = support_client.post(url, data)
        assert response.status_code == 403, url
        assert b"Only a release manager" in response.content
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    assert not GateReview.objects.exists() and not Decision.objects.exists()
    assert not Incident.objects.exists()
    flag = Flag.objects.get(name="scenes")
    assert flag.everyone is None and flag.basis_points == 0
    assert AuditEntry.objects.count() == audited


def test_release_actions__user_without_role__refused(
    nobody_client: Client, plan: RolloutPlan
) -> None:
    for url, data in _release_actions(plan):
        assert nobody_client.post(url, data).status_code == 403, url


def test_actions__get__method_not_allowed(manager_client: Client, plan: RolloutPlan) -> None:
    for url, _data in _release_actions(plan):
        assert manager_client.get(url).status_code == 405, url


def test_actions__without_csrf_token__refused(manager: Any, plan: RolloutPlan) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    for url, data in _release_actions(plan):
        assert client.post(url, data).status_code == 403, url
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE


def test_sign_off__support__allowed_and_audited(support_client: Client, plan: RolloutPlan) -> None:
    phase = plan.phases.get(status="active")
    response = support_client.post(
        reverse("dashboard:gate_sign_off", args=[phase.pk]), {"comment": "looks fine"}, follow=True
    )
    assert response.status_code == 200
    assert "Signed off Internal testing as support." in response.content.decode()
    signoff = SignOff.objects.get(phase=phase)
    assert (signoff.user.username, signoff.role, signoff.comment) == (
        "sue",
        "support",
        "looks fine",
    )
    assert AuditEntry.objects.filter(action="gate.sign_off", actor_label="sue").count() == 1


def test_checklist__support__can_tick(support_client: Client, plan: RolloutPlan) -> None:
    phase = plan.phases.get(status="active")
    item = phase.checklist.get()
    support_client.post(
        reverse("dashboard:gate_checklist", args=[phase.pk]), {"item": item.pk, "ticked": "on"}
    )
    item.refresh_from_db()
    assert item.ticked_by.username == "sue"
