"""The gate page in a real browser: a release manager runs the gate and decides GO through the
confirmation form; a support user can sign off but is offered no decision."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from monitoring.services import samples_ingest
from phases import services
from phases.models import Decision, Phase, RolloutPlan
from tests.e2e.conftest import screenshot
from tests.phases.conftest import SYSTEM, release_flags, two_flag_release

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
__all__ = ["release_flags"]  # the fixture, used by name below
PASSWORD = "a-long-password-1"
COHORTS = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}


def _staff(username: str, role: str) -> Any:
    # Transactional tests flush the database, and with it the role groups the migration made.
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def plan(release_flags: dict) -> RolloutPlan:
    definition = two_flag_release()
    definition["phases"][0]["checklist"] = ["Security review cleared", "Documentation complete"]
    plan = services.plan_create(
        name="Stripboard", definition=definition, flags=release_flags, actor=SYSTEM, cohorts=COHORTS
    )
    services.plan_activate(plan=plan, actor=SYSTEM)
    now = datetime.now(UTC).isoformat()
    samples_ingest(  # 2 % errors: the error-rate criterion fails
        items=[{"metric": "requests", "value": 50, "timestamp": now} for _ in range(20)]
        + [{"metric": "errors", "value": 20, "timestamp": now}]
    )
    return plan


def _log_in(page: Page, base: str, username: str) -> None:
    # Django's admin pages name no icon, so Chromium asks for /favicon.ico, a 404 that would be
    # the only console error here (reported: templates/admin/base_site.html should set one).
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    page.goto(f"{base}/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_gate_admin__release_manager_runs_the_gate_and_decides_go(
    live_server: Any, page: Page, console_errors: list[str], plan: RolloutPlan
) -> None:
    _staff("ann", "release_manager")
    bob = _staff("bob", "release_manager")
    services.sign_off(phase=plan.phases.get(position=0), user=bob)
    _log_in(page, live_server.url, "ann")

    page.locator("#phases-rolloutplan").get_by_role("link", name="Rollout plans").click()
    page.get_by_role("link", name="Stripboard").click()
    page.get_by_role("link", name="Run gate: Internal testing").click()
    expect(page.get_by_role("heading", name="Gate: Internal testing")).to_be_visible()

    page.get_by_role("button", name="Run gate now").click()
    expect(page.get_by_text("Gate run: not every criterion passed.")).to_be_visible()
    row = page.locator("#criteria tbody tr", has_text="Error rate under 0.5 %")
    expect(row).to_contain_text("< 0.005")
    expect(row).to_contain_text("0.02")  # observed
    expect(row).to_contain_text("Fail")

    page.get_by_role("button", name="Tick: Security review cleared").click()
    expect(page.locator("#checklist tbody tr", has_text="Security review")).to_contain_text("ann")
    page.get_by_label("Sign-off comment (optional)").fill("internal build is fine")
    page.get_by_role("button", name="Sign off as ann").click()
    expect(page.locator("#signoffs")).to_contain_text("internal build is fine")
    screenshot(page, "gate-admin")

    page.get_by_role("button", name="GO…", exact=True).click()
    expect(page.get_by_role("heading", name="Confirm GO: Internal testing")).to_be_visible()
    page.get_by_label("Comment", exact=True).fill("internal users are happy")
    # Without an override the service refuses and says why; nothing changes.
    page.get_by_role("button", name="Confirm GO").click()
    expect(page.get_by_text("GO needs a written override")).to_be_visible()
    assert not Decision.objects.exists()
    page.get_by_label("Override reason").fill("error spike came from a test harness")
    screenshot(page, "gate-admin-confirm")
    page.get_by_role("button", name="Confirm GO").focus()
    page.keyboard.press("Enter")  # keyboard-usable

    expect(page.get_by_text("GO recorded for Internal testing.")).to_be_visible()
    expect(page.get_by_role("link", name="Run gate: Closed beta")).to_be_visible()
    screenshot(page, "gate-admin-after-go")
    decision = Decision.objects.get()
    assert decision.override_reason == "error spike came from a test harness"
    assert plan.phases.get(status=Phase.Status.ACTIVE).name == "Closed beta"


def test_gate_admin__support_signs_off_and_sees_no_decision_buttons(
    live_server: Any, page: Page, console_errors: list[str], plan: RolloutPlan
) -> None:
    _staff("sue", "support")
    _log_in(page, live_server.url, "sue")
    phase = plan.phases.get(position=0)
    page.goto(f"{live_server.url}/admin/phases/phase/{phase.pk}/gate/")
    expect(page.get_by_role("heading", name="Gate: Internal testing")).to_be_visible()
    page.get_by_role("button", name="Sign off as sue").click()
    expect(page.get_by_text("Signed off Internal testing as support.")).to_be_visible()
    expect(page.get_by_role("heading", name="Decision", exact=True)).to_have_count(0)
    for label in ["GO…", "NO-GO…", "ROLLBACK…"]:
        expect(page.get_by_role("button", name=label, exact=True)).to_have_count(0)
    screenshot(page, "gate-admin-support")
