"""Issue 8: the feedback triage flow works with the keyboard alone. A support engineer logs in,
filters the queue, opens the critical item, marks it triaged, takes it and comments on it without
touching the mouse; focus stays visible (and never falls back to <body>) at every step."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from feedback import services
from feedback.models import FeedbackItem
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-password-1"
COMMENT = "Reproduced on 2.3.1; asking the reporter for logs."

# What the focused element looks like, and whether the focus ring can be seen.
FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const style = getComputedStyle(el);
  const rect = el.getBoundingClientRect();
  const label = (el.labels && el.labels[0] ? el.labels[0].textContent : "")
    || el.getAttribute("aria-label") || (el.textContent || "").trim().slice(0, 40);
  return {
    tag: el.tagName.toLowerCase(), id: el.id, name: el.getAttribute("name") || "",
    label: label.trim(),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
    shown: rect.width > 0 && rect.height > 0,
  };
}"""


def _focus(page: Page) -> dict:
    focused = page.evaluate(FOCUS)
    assert focused is not None, "focus fell back to <body>"
    assert focused["shown"], f"the focused element is not rendered: {focused}"
    assert focused["outline"] or focused["shadow"], f"no visible focus indicator: {focused}"
    return focused


def _tab_to(page: Page, wanted: str, *, back: bool = False, limit: int = 40) -> dict:
    """Presses Tab (or Shift+Tab) until the focused element matches the CSS selector `wanted`,
    checking the focus ring on everything passed on the way."""
    path = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        focused = _focus(page)
        path.append(f"{focused['tag']}#{focused['id']}[{focused['label']}]")
        if page.evaluate("s => document.activeElement.matches(s)", wanted):
            return focused
    raise AssertionError(f"{wanted} not reached with the keyboard; focus went: {path}")


def _file(type: str, text: str, **kwargs: object) -> FeedbackItem:
    return services.feedback_create(
        type=type, text=text, actor=Actor.system("test"), unit="u-7", **kwargs
    )


def test_support_triages_an_item_with_the_keyboard_alone(
    live_server: object, page: Page, console_errors: list[str]
) -> None:
    sam = get_user_model().objects.create_user(username="sam", password=PASSWORD)
    sam.groups.add(Group.objects.get_or_create(name="support")[0])
    blocker = _file("blocker", "The export crashes the app", app_version="2.3.1")
    _file("bug", "Call sheet shows the wrong date")
    _file("praise", "Love the new stripboard", rating=5)
    assert FeedbackItem.objects.get(pk=blocker.pk).priority == "critical"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Log in: the username field has focus on arrival.
    page.goto(f"{live_server.url}/feedback/")
    expect(page.get_by_label("Username")).to_be_focused()
    _focus(page)
    page.keyboard.type("sam")
    _tab_to(page, "#id_password")
    page.keyboard.type(PASSWORD)
    screenshot(page, "feedback-keyboard-1-login")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Feedback queue")).to_be_visible()
    status = page.locator("#queue-status")
    expect(status).to_have_text("3 items match.")

    # Filter by priority: typing on the focused menu picks "Critical"; htmx swaps the results
    # and focus stays on the menu.
    _tab_to(page, "#id_priority")
    page.keyboard.type("c")
    expect(page.get_by_label("Priority", exact=True)).to_have_value("critical")
    expect(status).to_have_text("1 item matches.")
    expect(page).to_have_url(re.compile(r"priority=critical"))
    expect(page.get_by_label("Priority", exact=True)).to_be_focused()
    _focus(page)
    screenshot(page, "feedback-keyboard-2-filtered")

    # Open the critical item.
    _tab_to(page, f'#queue-results a[href$="/feedback/{blocker.pk}/"]')
    screenshot(page, "feedback-keyboard-3-item-link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"#{blocker.pk} Blocker")).to_be_visible()

    # Status → triaged.
    _tab_to(page, "#id_status")
    page.keyboard.type("t")
    expect(page.get_by_label("New status")).to_have_value("triaged")
    _tab_to(page, 'form[action$="/status/"] button[type=submit]')
    screenshot(page, "feedback-keyboard-4-status")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Status changed.")).to_be_in_viewport()
    expect(page.get_by_test_id("status")).to_have_text("Triaged")

    # Take it: assignee → sam. Back on the item, Tab carries on from the form just used.
    expect(page).to_have_url(re.compile(r"#status-form$"))
    _tab_to(page, "#id_assignee", limit=8)
    page.keyboard.type("sam")
    expect(page.get_by_label("Assignee")).to_have_value("sam")
    _tab_to(page, 'form[action$="/assign/"] button[type=submit]')
    screenshot(page, "feedback-keyboard-5-assign")
    page.keyboard.press("Space")
    expect(page.get_by_text("Assignee changed.")).to_be_in_viewport()

    # Comment: the comment box comes before the triage forms on the page, so go back to it.
    _tab_to(page, "#id_text", back=True)
    page.keyboard.type(COMMENT)
    _tab_to(page, 'form[action$="/comment/"] button[type=submit]')
    screenshot(page, "feedback-keyboard-6-comment")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Comment added.")).to_be_in_viewport()
    _tab_to(page, "#id_text", limit=1)  # the next Tab is in the comment form again

    # What the page says...
    expect(page.get_by_test_id("status")).to_have_text("Triaged")
    history = page.locator(".fb-history")
    expect(history.get_by_role("listitem").filter(has_text="new → triaged")).to_be_visible()
    expect(history.get_by_role("listitem").filter(has_text="nobody → sam")).to_be_visible()
    expect(page.locator(".fb-comment").filter(has_text=COMMENT)).to_be_visible()
    screenshot(page, "feedback-keyboard-7-done")

    # ...and what the database holds: the changes, each audited once, by sam.
    item = FeedbackItem.objects.get(pk=blocker.pk)
    assert item.status == "triaged"
    assert item.assignee == sam
    assert [c.text for c in item.comments.all()] == [COMMENT]
    assert item.first_response_at is not None
    entries = AuditEntry.objects.filter(object_type="feedback.feedbackitem", object_id=str(item.pk))
    by_sam = entries.filter(actor_user=sam).order_by("created_at", "pk")
    assert [e.action for e in by_sam] == ["feedback.status", "feedback.assign", "feedback.comment"]
    assert (
        entries.exclude(actor_user=sam).values_list("action", flat=True).get() == "feedback.create"
    )
