"""Hostile text in every free-text field reaches the pages as text (checked in Chromium), and
SQL-looking strings are stored verbatim."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page

from flags import services as flag_services
from flags.models import Flag
from phases import services as phase_services
from rollout_control.core.actors import Actor
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("test")
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
SQL = "'; DROP TABLE flags_flag; --"


def test_free_text_everywhere__shown_as_text_and_stored_verbatim(
    live_server: object, page: Page
) -> None:
    user = get_user_model().objects.create_user(
        username="rita", password="a-long-password-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name="release_manager"))
    flag_services.cohort_create(key="evil", name=f"Cohort {XSS}", description=XSS, actor=SYSTEM)
    flag_services.cohort_members_add(key="evil", units=["u-1"], actor=SYSTEM)
    flag_services.flag_create(
        key="hostile",
        description=f"{XSS} {SQL}",
        owner=f"owner {XSS}",
        actor=SYSTEM,
        rollout_percentage=50,
        reason=f"why {XSS}",
    )
    definition = {
        "flags": ["f"],
        "cohorts": ["c"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {
                "name": f"Phase {XSS}",
                "checklist": [f"Check {XSS}"],
                "targets": [{"flag": "f", "cohort": "c", "start": 100, "target": 100}],
            }
        ],
    }
    plan = phase_services.plan_create(
        name=f"Plan {XSS}",
        definition=definition,
        flags={"f": "hostile"},
        cohorts={"c": "evil"},
        actor=SYSTEM,
    )
    phase_services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(hours=1))
    flag_services.flag_set_kill_switch(
        key="hostile", killed=True, actor=SYSTEM, reason=f"incident {XSS}"
    )
    assert Flag.objects.get(name="hostile").description == f"{XSS} {SQL}"

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Log in").click()
    pages = [
        "/",
        "/plans/",
        f"/plans/{plan.pk}/",
        "/flags/",
        "/flags/hostile/",
        "/why/?unit=u-1&kind=user",
        f"/admin/flags/flag/{Flag.objects.get(name='hostile').pk}/change/",
        f"/admin/phases/rolloutplan/{plan.pk}/change/",
    ]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__pwned") is None, path
        assert "<script>window.__pwned" in page.content() or "&lt;script&gt;" in page.content(), (
            path
        )
    page.goto(f"{live_server.url}/flags/hostile/")
    assert page.get_by_text("<script>window.__pwned = 1</script>", exact=False).first.is_visible()
    screenshot(page, "escaping-flag")
    assert dialogs == []
