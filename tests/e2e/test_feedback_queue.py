"""A support engineer's morning in a real browser: log in, filter the queue, triage a blocker,
export the queue as CSV, and see a reporter's `<script>` as the text it is."""

import csv
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from feedback import services
from feedback.models import FeedbackItem
from rollout_control.core.actors import Actor
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SCRIPT = "<script>window.pwned = true; alert('pwned')</script>"


def _support_user() -> None:
    user = get_user_model().objects.create_user(username="sam", password="a-long-password-1")
    user.groups.add(Group.objects.get_or_create(name="support")[0])


def _file(type: str, text: str, **kwargs: object) -> FeedbackItem:
    return services.feedback_create(
        type=type, text=text, actor=Actor.system("test"), unit="u-7", **kwargs
    )


def test_support_queue__filter_triage_export_and_escaped_text(
    live_server: object, page: Page, console_errors: list[str]
) -> None:
    _support_user()
    blocker = _file("blocker", SCRIPT, app_version="2.3.1")
    _file("praise", "Love the new stripboard", rating=5)
    _file("bug", "Call sheet shows the wrong date")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"{live_server.url}/feedback/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Feedback queue")).to_be_visible()
    status = page.locator("#queue-status")
    expect(status).to_have_text("3 items match.")

    # Filter: htmx swaps the results in place and puts the filter in the address bar.
    page.get_by_label("Priority", exact=True).select_option("critical")
    expect(status).to_have_text("1 item matches.")
    expect(page).to_have_url(re.compile(r"priority=critical"))
    results = page.locator("#queue-results")
    expect(results.get_by_text(SCRIPT)).to_be_visible()
    expect(results.get_by_text("Love the new stripboard")).to_have_count(0)

    # "/" jumps to the search box; searching narrows further.
    page.locator("body").click()
    page.keyboard.press("/")
    expect(page.get_by_label("Search")).to_be_focused()
    page.keyboard.type("wrong date")
    expect(status).to_have_text("0 items match.")
    page.get_by_label("Search").fill("")
    page.get_by_label("Search").press("Enter")
    expect(status).to_have_text("1 item matches.")
    screenshot(page, "feedback-queue-filtered")

    # Export what is on screen.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [(r["id"], r["priority"], r["text"]) for r in rows] == [
        (str(blocker.pk), "critical", SCRIPT)
    ]

    # Triage the blocker on its page.
    page.get_by_role("link", name=f"#{blocker.pk}").click()
    expect(page.get_by_role("heading", name=f"#{blocker.pk} Blocker")).to_be_visible()
    expect(page.get_by_test_id("feedback-text")).to_have_text(SCRIPT)
    page.get_by_label("New status").select_option("triaged")
    page.get_by_role("button", name="Change status").click()
    expect(page.get_by_text("Status changed.")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("Triaged")
    expect(page.get_by_role("listitem").filter(has_text="new → triaged")).to_be_visible()
    # Support may ask for the unit to be excluded, never change the flag itself.
    expect(page.get_by_role("button", name="Exclude the unit")).to_have_count(0)
    screenshot(page, "feedback-item-triaged")

    # Back in the queue: tick everything open and take it (bulk, through htmx).
    page.get_by_role("link", name="Feedback queue").first.click()
    expect(status).to_have_text("3 items match.")
    page.get_by_label("Tick every item on this page").check()
    page.get_by_label("Assign to").select_option("sam")
    page.get_by_role("button", name="Assign").click()
    expect(status).to_contain_text("Assigned to sam: 3 item(s).")
    expect(status).to_be_focused()
    screenshot(page, "feedback-queue-bulk")

    assert FeedbackItem.objects.get(pk=blocker.pk).status == "triaged"
    assert FeedbackItem.objects.filter(assignee__username="sam").count() == 3
    assert dialogs == []
    assert page.evaluate("window.pwned === undefined")
