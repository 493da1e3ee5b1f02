from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from feedback import api as feedback_api
from feedback.models import FeedbackItem
from flags.models import Flag
from phases.models import RolloutPlan
from rollout_control.core.models import AuditEntry
from rollout_control.core.ratelimit import TokenBucket
from tests.feedback.conftest import FLAG, PLAN, file

pytestmark = pytest.mark.django_db
URL = "/api/v1/feedback/"


def _session(user: object) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _error(response: Any) -> dict:
    return response.json()["error"]


def test_intake__client_token__201_with_priority_due_time_and_flag_state(
    client_api: APIClient, live_plan: RolloutPlan, django_capture_on_commit_callbacks: object
) -> None:
    body = {
        "type": "blocker",
        "text": "Scenes vanish after sync",
        "rating": 1,
        "flag": FLAG,
        "unit": "u-beta",
        "org": "studio-7",
        "app_version": "2.3.1",
        "metadata": {"device": "iPad"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["type"], data["priority"], data["status"]) == ("blocker", "critical", "new")
    item = FeedbackItem.objects.get(pk=data["id"])
    assert item.due_at - item.created_at == timedelta(hours=1)
    assert data["flag_state"] == {
        "key": FLAG,
        "value": item.flag_value,
        "reason": "TARGETING_MATCH",
        "percentage": 50,
        "cohort": "beta",
        "plan": PLAN,
        "phase": "Closed beta",
    }
    assert "assignee" not in data  # client apps see no staff details
    assert (item.submitted_by, item.source, item.metadata) == (
        "token:app",
        "api",
        {"device": "iPad"},
    )
    assert len(mail.outbox) == 1 and "critical feedback" in mail.outbox[0].subject
    assert AuditEntry.objects.get(action="feedback.create").actor_label == "token:app"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 10_001}, "text"),
        ({"type": "complaint"}, "type"),
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"flag": "no-such-flag"}, "flag"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_intake__bad_input__400_naming_the_field_nothing_saved(
    client_api: APIClient, beta_flag: str, change: dict, field: str
) -> None:
    body = {"type": "bug", "text": "It broke", "unit": f"u-{field}"} | change
    response = client_api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    error = _error(response)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert error["message"].startswith(f"{field}: ")
    assert FeedbackItem.objects.count() == 0


def test_intake__missing_type_and_text__both_named(client_api: APIClient) -> None:
    response = client_api.post(URL, {}, format="json")
    assert response.status_code == 400
    assert set(_error(response)["fields"]) == {"type", "text"}


def test_intake__over_the_unit_rate__429_with_retry_after_per_unit(
    client_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_api, "_limiter", TokenBucket(rate=1 / 3600, burst=2))
    body = {"type": "question", "text": "How do I export?", "unit": "chatty"}
    assert [client_api.post(URL, body, format="json").status_code for _ in range(2)] == [201, 201]
    response = client_api.post(URL, body, format="json")
    assert response.status_code == 429
    assert _error(response)["code"] == "rate_limited"
    assert 3000 < int(response["Retry-After"]) <= 3600
    # Another unit has its own allowance.
    other = client_api.post(URL, body | {"unit": "quiet"}, format="json")
    assert other.status_code == 201
    assert FeedbackItem.objects.count() == 3


def test_permissions__client_token_sends_but_reads_and_changes_nothing(
    client_api: APIClient,
) -> None:
    item = file()
    assert client_api.get(URL).status_code == 403
    assert client_api.get(f"{URL}{item.pk}/").status_code == 403
    response = client_api.patch(f"{URL}{item.pk}/", {"status": "triaged"}, format="json")
    assert response.status_code == 403
    assert client_api.post(f"{URL}{item.pk}/comments/", {"text": "hi"}).status_code == 403
    assert client_api.post(f"{URL}{item.pk}/exclude-unit/", {}).status_code == 403
    assert client_api.post(f"{URL}bulk/", {}).status_code == 403
    assert FeedbackItem.objects.get().status == "new"


def test_permissions__anonymous__401(api: APIClient) -> None:
    assert api.post(URL, {"type": "bug", "text": "x"}, format="json").status_code == 401
    assert api.get(URL).status_code == 401


def test_permissions__support_triages_but_cannot_change_flags_or_plans(
    support_user: object, live_plan: RolloutPlan
) -> None:
    client = _session(support_user)
    item = file(type="blocker", flag_key=FLAG, unit="u-beta")
    assert client.get(URL).status_code == 200
    response = client.patch(f"{URL}{item.pk}/", {"status": "triaged"}, format="json")
    assert response.status_code == 200
    assert client.post(f"{URL}{item.pk}/exclusion-request/", {}).status_code == 200
    response = client.post(f"{URL}{item.pk}/exclude-unit/", {})
    assert response.status_code == 403
    assert _error(response)["code"] == "permission_denied"
    assert Flag.objects.get(name=FLAG).excluded_units == []
    # Nor anything else that changes flags or plans.
    assert client.patch(f"/api/v1/flags/{FLAG}/", {"rollout_percentage": 5}).status_code == 403
    assert client.post(f"/api/v1/plans/{live_plan.pk}/pause/", {}).status_code == 403
    live_plan.refresh_from_db()
    assert live_plan.status == "active"


def test_permissions__release_manager_excludes_the_unit_in_one_call(
    release_manager: object, live_plan: RolloutPlan
) -> None:
    item = file(type="blocker", flag_key=FLAG, unit="u-beta")
    response = _session(release_manager).post(
        f"{URL}{item.pk}/exclude-unit/", {"reason": "crashes on launch"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["unit_excluded_at"] is not None
    assert Flag.objects.get(name=FLAG).excluded_units == ["u-beta"]
    live_plan.refresh_from_db()
    assert live_plan.status == "paused"


def test_list__filters_search_and_pagination(admin_api: APIClient, beta_flag: str) -> None:
    blocker = file(type="blocker", text="Sync wipes the board", flag_key=FLAG, unit="u-beta")
    file(type="praise", text="Love the new stripboard")
    for n in range(3):
        file(type="bug", text=f"Bug {n}")

    page = admin_api.get(URL, {"page_size": 2}).json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["results"][0]["id"] == blocker.pk  # earliest deadline first
    assert page["next"]

    def ids(**params: str) -> list[int]:
        response = admin_api.get(URL, params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(priority="critical") == [blocker.pk]
    assert ids(flag=FLAG) == [blocker.pk]
    assert ids(q="stripboard") == [FeedbackItem.objects.get(type="praise").pk]
    assert ids(q=f"#{blocker.pk}") == [blocker.pk]
    assert len(ids(type="bug")) == 3
    assert ids(status="triaged") == []
    assert len(ids(status="open")) == 5
    assert ids(assignee="none", priority="critical") == [blocker.pk]
    assert ids(overdue="true") == []
    response = admin_api.get(URL, {"status": "sleeping"})
    assert response.status_code == 400
    assert list(_error(response)["fields"]) == ["status"]
    # A checkbox would count any value as ticked; the API reads a boolean or refuses.
    for value in ("null", "on", ""):
        response = admin_api.get(URL, {"overdue": value})
        assert response.status_code == 400, value
        assert list(_error(response)["fields"]) == ["overdue"]


def test_detail_and_patch__history_comments_and_validation(
    support_user: object, release_manager: object
) -> None:
    client = _session(support_user)
    item, original = file(type="bug"), file(type="bug")

    response = client.patch(f"{URL}{item.pk}/", {"priority": "critical"}, format="json")
    assert response.status_code == 400
    assert list(_error(response)["fields"]) == ["reason"]

    response = client.patch(
        f"{URL}{item.pk}/",
        {"priority": "critical", "reason": "Data loss", "assignee": "rita", "status": "triaged"},
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["priority"], data["assignee"], data["status"]) == ("critical", "rita", "triaged")

    comment = client.post(f"{URL}{item.pk}/comments/", {"text": "<b>Reproduced</b>"})
    assert comment.status_code == 201
    assert comment.json()["author"] == "sam"

    response = client.patch(f"{URL}{item.pk}/", {"status": "resolved"}, format="json")
    assert response.json()["time_to_resolution_seconds"] >= 0

    response = client.patch(f"{URL}{item.pk}/", {"status": "new"}, format="json")
    assert response.status_code == 409
    assert _error(response)["code"] == "invalid_transition"
    assert list(_error(response)["fields"]) == ["status"]

    response = client.patch(f"{URL}{original.pk}/", {"assignee": "nobody-here"}, format="json")
    assert response.status_code == 400
    assert list(_error(response)["fields"]) == ["assignee"]

    detail = client.get(f"{URL}{item.pk}/").json()
    assert [e["kind"] for e in detail["history"]] == [
        "created",
        "priority",
        "assigned",
        "status",
        "commented",
        "status",
    ]
    assert detail["comments"][0]["text"] == "<b>Reproduced</b>"
    assert client.get(f"{URL}999999/").status_code == 404


def test_patch__duplicate_of_an_unknown_item__400(support_user: object) -> None:
    item = file()
    response = _session(support_user).patch(
        f"{URL}{item.pk}/", {"status": "duplicate", "duplicate_of": 999_999}, format="json"
    )
    assert response.status_code == 400
    assert list(_error(response)["fields"]) == ["duplicate_of"]


def test_bulk__assign_and_change_status(admin_api: APIClient, support_user: object) -> None:
    first, second = file(), file()
    response = admin_api.post(
        f"{URL}bulk/",
        {"ids": [first.pk, second.pk, 999_999], "action": "assign", "assignee": "sam"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "changed": [first.pk, second.pk],
        "skipped": {"999999": "no such item"},
    }
    response = admin_api.post(
        f"{URL}bulk/", {"ids": [first.pk], "action": "status", "status": "triaged"}, format="json"
    )
    assert response.json()["changed"] == [first.pk]
    response = admin_api.post(f"{URL}bulk/", {"ids": [first.pk], "action": "status"}, format="json")
    assert list(_error(response)["fields"]) == ["status"]


@pytest.mark.parametrize("status", ["new", "duplicate"])
def test_bulk__to_new_or_duplicate__400_nothing_changes(admin_api: APIClient, status: str) -> None:
    item = file()
    response = admin_api.post(
        f"{URL}bulk/", {"ids": [item.pk], "action": "status", "status": status}, format="json"
    )
    assert response.status_code == 400
    assert list(_error(response)["fields"]) == ["status"]
    assert FeedbackItem.objects.get().events.count() == 1
