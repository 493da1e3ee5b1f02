"""Concurrent triage (issue 14, point 6): two staff changing one item at the same moment, one by
one or in bulk, get 200 (or 409), never 500; one wins, one audit row per change.

As in tests/test_lost_updates.py the race is made real: the first request is held inside its
transaction just after it locked the item, until PostgreSQL shows the second one waiting for that
lock; only then does the first commit."""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from feedback.models import FeedbackItem
from rollout_control.core.models import AuditEntry
from tests.feedback.conftest import file
from tests.races import HoldAfterLock, waiting_for_lock

URL = "/api/v1/feedback/"
WAIT = 10.0


Request = tuple[str, str, dict[str, Any]]  # method, url, body


def _race(token: str, first: Request, second: Request) -> list[tuple[int, Any]]:
    """Sends `first` and, while it holds its row lock, `second`: (status, body) of each."""
    hold = HoldAfterLock()
    answers: dict[str, tuple[int, Any]] = {}

    def send(name: str, request: Request, wrapper: HoldAfterLock | None) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        method, url, body = request
        try:
            if wrapper is None:
                response = getattr(client, method)(url, body, format="json")
            else:
                with connections["default"].execute_wrapper(wrapper):
                    response = getattr(client, method)(url, body, format="json")
            answers[name] = (response.status_code, response.content)
        finally:
            connections.close_all()

    holder = threading.Thread(target=send, args=("first", first, hold))
    holder.start()
    assert hold.locked.wait(WAIT), "the first request never locked the item"
    waiter = threading.Thread(target=send, args=("second", second, None))
    waiter.start()
    deadline = time.monotonic() + WAIT
    while not waiting_for_lock() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling PostgreSQL for the waiter, not waiting for time to pass
    assert waiting_for_lock(), "the second request never waited for the lock"
    hold.release.set()
    holder.join(WAIT)
    waiter.join(WAIT)
    return [answers.get("first", (0, b"")), answers.get("second", (0, b""))]


@pytest.fixture
def _no_stray_connections() -> Iterator[None]:
    yield
    connections.close_all()


@pytest.fixture
def item(db: None) -> FeedbackItem:
    return file(type="bug", text="Export hangs")


def _audits(action: str) -> int:
    return AuditEntry.objects.filter(action=action).count()


@pytest.mark.django_db(transaction=True)
def test_feedback_patch__two_assignments_at_once__both_200_first_kept_one_audit(
    admin_token: str,
    release_manager: Any,
    support_user: Any,
    item: FeedbackItem,
    _no_stray_connections: None,
) -> None:
    url = f"{URL}{item.pk}/"
    answers = _race(
        admin_token,
        ("patch", url, {"assignee": support_user.username}),
        ("patch", url, {"assignee": support_user.username}),
    )
    assert [status for status, _ in answers] == [200, 200], answers
    item.refresh_from_db()
    assert item.assignee_id == support_user.pk
    assert _audits("feedback.assign") == 1


@pytest.mark.django_db(transaction=True)
def test_feedback_patch__two_different_assignees_at_once__both_200_last_applied(
    admin_token: str,
    release_manager: Any,
    support_user: Any,
    item: FeedbackItem,
    _no_stray_connections: None,
) -> None:
    url = f"{URL}{item.pk}/"
    answers = _race(
        admin_token,
        ("patch", url, {"assignee": support_user.username}),
        ("patch", url, {"assignee": release_manager.username, "status": "triaged"}),
    )
    assert [status for status, _ in answers] == [200, 200], answers
    item.refresh_from_db()
    assert (item.assignee_id, item.status) == (release_manager.pk, "triaged")
    assert _audits("feedback.assign") == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bulk_first", [True, False])
def test_feedback_bulk_assign__racing_status_change__both_200_both_applied(
    admin_token: str,
    support_user: Any,
    item: FeedbackItem,
    _no_stray_connections: None,
    bulk_first: bool,
) -> None:
    other = file(type="bug", text="Print is blank")
    bulk = (
        "post",
        f"{URL}bulk/",
        {"ids": [other.pk, item.pk], "action": "assign", "assignee": support_user.username},
    )
    status = ("patch", f"{URL}{item.pk}/", {"status": "triaged"})
    answers = _race(admin_token, *((bulk, status) if bulk_first else (status, bulk)))
    assert [code for code, _ in answers] == [200, 200], answers
    item.refresh_from_db()
    other.refresh_from_db()
    assert (item.assignee_id, item.status, other.assignee_id) == (
        support_user.pk,
        "triaged",
        support_user.pk,
    )
    assert (_audits("feedback.assign"), _audits("feedback.status")) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_feedback_bulk_status__racing_single_close__200_each_item_changed_once(
    admin_token: str, item: FeedbackItem, _no_stray_connections: None
) -> None:
    other = file(type="bug", text="Print is blank")
    answers = _race(
        admin_token,
        ("patch", f"{URL}{item.pk}/", {"status": "closed"}),
        (
            "post",
            f"{URL}bulk/",
            {"ids": [item.pk, other.pk], "action": "status", "status": "closed"},
        ),
    )
    assert [code for code, _ in answers] == [200, 200], answers
    item.refresh_from_db()
    other.refresh_from_db()
    assert (item.status, other.status) == ("closed", "closed")
    assert _audits("feedback.status") == 2
