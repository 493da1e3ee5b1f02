"""The release dashboard in a real browser: the demo populates every page, which axe-core finds
free of serious accessibility problems at 1280 px and which fit a 375 px phone; a release
manager flips a kill switch, changes a percentage, runs a gate and decides GO, and rolls a plan
back; support staff sign off and are refused every release action. Any JavaScript console error
fails a test (the console_errors fixture)."""

import contextlib
import datetime as dt
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from flags.models import Flag
from monitoring.services import samples_ingest
from phases import services
from phases.models import Decision, Incident, Phase, RolloutPlan
from tests.e2e.conftest import screenshot
from tests.phases.conftest import SYSTEM, release_flags, two_flag_release

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
__all__ = ["release_flags"]  # the fixture, used by name below
PASSWORD = "a-long-password-1"
AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
COHORTS = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from npm (tests/e2e/axe/package.json), installed on first use."""
    if not AXE.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed for axe-core (.ci/run installs it)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR, check=True)
    return AXE


def _user(username: str, role: str) -> Any:
    # Transactional tests flush the database, and with it the role groups the migration made.
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Rollouts")).to_be_visible()


def _axe(page: Page, script: Path, what: str) -> None:
    """No serious or critical violation on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the driver: the page's CSP (no inline script) refuses a script tag.
        page.evaluate(script.read_text())
    result = page.evaluate("async () => (await axe.run(document)).violations")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{what}: {bad}"


def _fits_phone(page: Page, name: str) -> None:
    page.set_viewport_size(PHONE)
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    with contextlib.suppress(PlaywrightTimeout):  # charts redraw at their new size a bit later
        page.wait_for_function(fits, timeout=5_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    screenshot(page, f"{name}-phone")
    assert overflow <= 0, f"{name}: {overflow}px wider than a 375px phone"
    page.set_viewport_size({"width": 1280, "height": 800})


def _visit(page: Page, url: str, name: str, axe: Path) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    screenshot(page, name)
    _axe(page, axe, name)
    _fits_phone(page, name)


def test_dashboard__demo__every_page_populated_accessible_and_phone_sized(
    live_server: Any, page: Page, console_errors: list[str], axe_script: Path
) -> None:
    call_command("load_demo", stdout=io.StringIO())
    _user("manager", "release_manager")
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 800})
    _log_in(page, base, "manager")
    release = RolloutPlan.objects.get(name="Stripboard scenes")
    onboarding = RolloutPlan.objects.get(name="IFM platform onboarding")

    _visit(page, f"{base}/", "dashboard-home", axe_script)
    for plan in (release, onboarding):
        card = page.locator("section.plan-card", has_text=plan.name)
        expect(card.locator("[aria-current=step]")).to_have_count(1)
        expect(card.locator("table.targets tbody tr").first).to_be_visible()
    expect(page.get_by_role("heading", name="Scheduler")).to_be_visible()
    expect(page.get_by_role("heading", name="Degradation")).to_be_visible()

    _visit(page, f"{base}/plans/{release.pk}/", "dashboard-plan", axe_script)
    expect(page.get_by_role("heading", name="Gate: Open beta → Limited production")).to_be_visible()
    # Charts drawn from data: three flags' rollouts, the guardrails with checks, adoption.
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('canvas')].filter(c => Chart.getChart(c)).length"
    )
    assert drawn >= 3 + 3 + 1, drawn
    expect(page.locator("#chart-adoption")).to_be_visible()
    expect(page.get_by_text("Ramp steps")).to_be_visible()
    # The confirmation dialogs are part of the page: check one open as well.
    page.get_by_role("button", name="Roll back…").click()
    rollback = page.get_by_role("dialog", name="Roll back Stripboard scenes?")
    expect(rollback).to_be_visible()
    # what it would do, per flag, before confirming
    expect(rollback.get_by_role("columnheader", name="Known units losing it")).to_be_visible()
    expect(rollback.locator("tbody tr")).to_have_count(3)
    screenshot(page, "dashboard-plan-rollback-dialog")
    _axe(page, axe_script, "plan page, rollback dialog open")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    _visit(page, f"{base}/plans/{onboarding.pk}/", "dashboard-plan-onboarding", axe_script)
    _visit(page, f"{base}/plans/", "dashboard-plans", axe_script)
    _visit(page, f"{base}/flags/", "dashboard-flags", axe_script)
    expect(page.locator("tbody tr")).to_have_count(4)
    _visit(page, f"{base}/flags/scene-management/", "dashboard-flag", axe_script)
    expect(page.locator("#audit tbody tr").first).to_contain_text("open-beta")
    page.get_by_label("Evaluation context (JSON)").fill('{"targetingKey": "staff-3"}')
    page.get_by_role("button", name="Evaluate").click()
    expect(page.locator("#tester-result")).to_contain_text("TARGETING_MATCH")
    expect(page.locator("#tester-result")).to_contain_text("internal")
    screenshot(page, "dashboard-flag-tester")

    _visit(page, f"{base}/why/?unit=user-7&kind=user", "dashboard-why", axe_script)
    rows = page.locator("#why-table tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.filter(has_text="scene-management")).to_contain_text("Stripboard scenes")
    _visit(page, f"{base}/why/?unit=org-02&kind=org", "dashboard-why-org", axe_script)
    expect(
        page.locator("#why-table tbody tr", has_text="ifm-platform").locator(".badge")
    ).to_have_text("on")

    page.goto(f"{base}/accounts/login/")
    _axe(page, axe_script, "login")


@pytest.fixture
def plan(release_flags: dict[str, str]) -> RolloutPlan:
    definition = two_flag_release()
    definition["phases"][0]["checklist"] = ["Security review cleared"]
    plan = services.plan_create(
        name="Stripboard", definition=definition, flags=release_flags, actor=SYSTEM, cohorts=COHORTS
    )
    plan = services.plan_activate(plan=plan, actor=SYSTEM)
    now = dt.datetime.now(dt.UTC).isoformat()
    samples_ingest(  # 2 % errors: the error-rate criterion fails
        items=[{"metric": "requests", "value": 50, "timestamp": now} for _ in range(20)]
        + [{"metric": "errors", "value": 20, "timestamp": now}]
    )
    return plan


def test_release_manager__kill_switch_percentage_gate_go_and_rollback(
    live_server: Any, page: Page, console_errors: list[str], plan: RolloutPlan
) -> None:
    _user("ann", "release_manager")
    bob = _user("bob", "release_manager")
    base = live_server.url
    _log_in(page, base, "ann")

    # Kill switch: confirm with a reason, see the status change.
    page.get_by_role("link", name="Flags").click()
    page.get_by_role("link", name="scenes").click()
    expect(page.locator("#flag-state")).to_have_text("Rules")
    page.get_by_role("button", name="Turn the kill switch on…").click()
    dialog = page.get_by_role("dialog", name="Turn scenes off for everyone?")
    dialog.get_by_label("Reason (required)").fill("crash on save")
    dialog.get_by_role("button", name="Confirm: kill switch on").click()
    expect(page.locator("#flag-state")).to_have_text("Kill switch on")
    expect(page.get_by_text("scenes: kill switch on — off for everyone.")).to_be_visible()
    expect(page.get_by_text("Plan “Stripboard”: Paused")).to_be_visible()
    expect(page.locator("#audit tbody tr").first).to_contain_text("crash on save")
    screenshot(page, "dashboard-flag-killed")
    assert Flag.objects.get(name="scenes").everyone is False
    page.get_by_role("button", name="Turn the kill switch off…").click()
    dialog = page.get_by_role("dialog", name="Turn the kill switch off for scenes?")
    dialog.get_by_label("Reason (required)").fill("fixed in 2.3.1")
    dialog.get_by_role("button", name="Confirm: kill switch off").click()
    expect(page.locator("#flag-state")).to_have_text("Rules")

    # Percentage: the dialog says what will change; cancel changes nothing, confirm does.
    page.get_by_label("Rule", exact=True).select_option("default")
    page.get_by_label("New percentage", exact=False).fill("12.5")
    page.get_by_role("button", name="Set percentage…").click()
    dialog = page.get_by_role("dialog", name="Change a percentage of scenes?")
    expect(dialog).to_contain_text("Everyone else (now 0 %) → 12.5 %")
    dialog.get_by_role("button", name="Cancel").click()
    assert Flag.objects.get(name="scenes").basis_points == 0
    page.get_by_role("button", name="Set percentage…").click()
    dialog.get_by_role("button", name="Confirm percentage").click()
    expect(page.get_by_text("scenes: everyone else now at 12.5 %.")).to_be_visible()
    expect(page.locator("#rules")).to_contain_text("12.5 %")
    assert Flag.objects.get(name="scenes").basis_points == 1250

    # The flag change paused the plan: resume it, run the gate, decide GO with an override.
    page.get_by_role("link", name="Stripboard").first.click()
    expect(page.get_by_role("heading", name="Stripboard Paused")).to_be_visible()
    page.get_by_role("button", name="Resume…").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm resume").click()
    expect(page.get_by_text("Resumed Stripboard.")).to_be_visible()
    services.sign_off(phase=plan.phases.get(position=0), user=bob)
    page.get_by_role("button", name="Run gate").click()
    expect(page.get_by_text("Gate run: 0 of 1 criteria passed.")).to_be_visible()
    expect(page.locator("#criteria tbody tr", has_text="Error rate")).to_contain_text("Fail")
    page.get_by_role("button", name="Tick: Security review cleared").click()
    expect(page.get_by_text("Ticked: Security review cleared")).to_be_visible()
    page.get_by_role("button", name="GO…", exact=True).click()
    dialog = page.get_by_role("dialog", name="Confirm GO: Internal testing")
    expect(dialog).to_contain_text("A GO now overrides")
    dialog.get_by_label("Comment (optional)").fill("internal users are happy")
    dialog.get_by_label("Override reason", exact=False).fill("error spike came from a test harness")
    screenshot(page, "dashboard-plan-go-dialog")
    dialog.get_by_role("button", name="Confirm GO").click()
    expect(page.get_by_text("GO recorded for Internal testing.")).to_be_visible()
    expect(page.get_by_role("heading", name="Gate: Closed beta → Open beta")).to_be_visible()
    assert plan.phases.get(status=Phase.Status.ACTIVE).name == "Closed beta"
    assert Decision.objects.get().override_reason == "error spike came from a test harness"

    # Roll back, with the keyboard: open the dialog, type the reason, confirm with Enter.
    page.get_by_role("button", name="Roll back…").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Roll back Stripboard?")
    expect(dialog.get_by_label("Reason (required)")).to_be_focused()
    page.keyboard.type("beta testers lose data")
    dialog.get_by_role("button", name="Confirm roll back").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile(r"^Rolled back: \d flag\(s\) lowered to "))).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("Rolled Back")
    expect(page.locator("details.incident")).to_contain_text("Manual by ann")
    screenshot(page, "dashboard-plan-rolled-back")
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ROLLED_BACK
    assert Incident.objects.get().reason == "beta testers lose data"


def test_support__signs_off_and_is_refused_release_actions(
    live_server: Any, page: Page, console_errors: list[str], plan: RolloutPlan, axe_script: Path
) -> None:
    _user("sue", "support")
    base = live_server.url
    _log_in(page, base, "sue")
    expect(page.get_by_text("(support)")).to_be_visible()
    page.goto(f"{base}/plans/{plan.pk}/")
    for label in ["Pause…", "Run gate", "Roll back…", "GO…", "NO-GO…", "ROLLBACK…"]:
        expect(page.get_by_role("button", name=label, exact=True)).to_have_count(0)
    page.get_by_label("Sign-off comment (optional)").fill("support is ready")
    page.get_by_role("button", name="Sign off as sue").click()
    expect(page.get_by_text("Signed off Internal testing as support.")).to_be_visible()
    expect(page.locator("#signoffs")).to_contain_text("support is ready")
    screenshot(page, "dashboard-plan-support")
    _axe(page, axe_script, "plan page as support")

    page.goto(f"{base}/flags/scenes/")
    expect(page.get_by_text("Only release managers change percentages.")).to_be_visible()
    expect(page.get_by_role("button", name="Turn the kill switch on…")).to_have_count(0)

    # Posting the release actions anyway (with a valid CSRF token): 403, nothing changes.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    phase = plan.phases.get(status="active")
    for path, form in [
        (f"/plans/{plan.pk}/pause/", {"reason": "x"}),
        (f"/plans/{plan.pk}/rollback/", {"reason": "x"}),
        (f"/phases/{phase.pk}/gate/run/", {}),
        (f"/phases/{phase.pk}/gate/decide/", {"kind": "go", "override_reason": "x"}),
        ("/flags/scenes/kill-switch/", {"killed": "on", "reason": "x"}),
        ("/flags/scenes/percentage/", {"rule": "default", "percentage": "50"}),
    ]:
        response = page.request.post(
            f"{base}{path}", form=form, headers={"X-CSRFToken": token, "Referer": base}
        )
        assert response.status == 403, path
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ACTIVE
    flag = Flag.objects.get(name="scenes")
    assert (flag.everyone, flag.basis_points) == (None, 0)
    assert not Decision.objects.exists() and not Incident.objects.exists()


def test_home__refreshes_itself_without_a_reload(
    live_server: Any, page: Page, console_errors: list[str], plan: RolloutPlan
) -> None:
    _user("ann", "release_manager")
    _log_in(page, live_server.url, "ann")
    card = page.locator("section.plan-card", has_text="Stripboard")
    expect(card.locator(".badge").first).to_have_text("Active")
    page.evaluate("window.__stillHere = true")
    services.plan_pause(plan=plan, actor=SYSTEM, reason="support is swamped")
    expect(card.locator(".badge").first).to_have_text("Paused", timeout=25_000)
    expect(card).to_contain_text("support is swamped")
    assert page.evaluate("window.__stillHere === true")  # swapped in place, not reloaded
