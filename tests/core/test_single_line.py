"""Names and keys are one line; free text is stored as sent (issue 14, points 9 and 12).

A newline in a plan name used to be accepted and then made every team e-mail about that plan
fail (BadHeaderError, not retried). Names, keys and ids now refuse control characters with a
400 naming the field, and mail subjects are made one line whatever was stored before.
"""

import json
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from feedback.models import FeedbackComment, FeedbackItem
from feedback.services import feedback_create
from flags import services as flag_services
from phases.services import plan_create_from_template
from phases.services.notify import phase_contacts, send_kickoff
from phases.tasks import send_email
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry
from rollout_control.core.notifications import notify

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("names")
COHORTS = ("internal", "external_beta", "open_beta", "power_users", "paying")
BAD = ["Launch\nBcc: evil@example.com", "Launch\tday", "Launch\x1b[31m"]
MORE_BAD = ["Launch\r", "Launch\x00", "Launch\x7f", "Launch\x85", "Launch\u2028"]


@pytest.fixture
def cohort(db: None) -> None:
    flag_services.cohort_create(key="internal", actor=SYSTEM)


@pytest.fixture
def plan_id(cohort: None) -> int:
    for key in COHORTS[1:]:
        flag_services.cohort_create(key=key, actor=SYSTEM)
    for key in ("scenes", "reports", "dragdrop"):
        flag_services.flag_create(key=key, actor=SYSTEM)
    plan = plan_create_from_template(
        template_key="feature-release",
        name="Stripboard",
        actor=SYSTEM,
        flags={"basic": "scenes", "reporting": "reports", "drag_drop": "dragdrop"},
        cohorts={key: key for key in COHORTS},
    )
    return plan.pk


GUARDRAIL = {"name": "errors", "metric": "error_rate", "comparator": "gt", "threshold": 1,
             "action": "alert"}  # fmt: skip
# (method, path, body with "{bad}" where the name goes, field the 400 names, token)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("POST", "/api/v1/tokens/", {"name": "{bad}", "scope": "client"}, "name", "admin"),
    ("POST", "/api/v1/cohorts/", {"key": "c2", "name": "{bad}"}, "name", "admin"),
    ("PATCH", "/api/v1/cohorts/internal/", {"name": "{bad}"}, "name", "admin"),
    ("POST", "/api/v1/flags/", {"key": "f2", "owner": "{bad}"}, "owner", "admin"),
    (
        "PATCH",
        "/api/v1/cohorts/internal/",
        {"rules": [{"attribute": "{bad}", "operator": "in", "values": ["a"]}]},
        "rules[0].attribute",
        "admin",
    ),
    ("POST", "/api/v1/cohorts/internal/members/", {"units": ["{bad}"]}, "units[0]", "admin"),
    (
        "POST",
        "/api/v1/plans/",
        {"template": "feature-release", "name": "{bad}", "flags": {"basic": "scenes"}},
        "name",
        "admin",
    ),
    ("PATCH", "/api/v1/plans/{plan}/", {"name": "{bad}"}, "name", "admin"),
    (
        "POST",
        "/api/v1/plans/{plan}/guardrails/",
        {
            "name": "{bad}",
            "metric": "error_rate",
            "comparator": "gt",
            "threshold": 1,
            "action": "alert",
        },
        "name",
        "admin",
    ),
    (
        "POST",
        "/api/v1/plans/{plan}/guardrails/",
        {
            "name": "errors",
            "metric": "{bad}",
            "comparator": "gt",
            "threshold": 1,
            "action": "alert",
        },
        "metric",
        "admin",
    ),
    (
        "POST",
        "/api/v1/metric-definitions/",
        {"name": "m2", "aggregation": "count", "metric": "{bad}"},
        "metric",
        "admin",
    ),
    ("POST", "/api/v1/feedback/", {"type": "bug", "text": "x", "unit": "{bad}"}, "unit", "client"),
    ("POST", "/api/v1/feedback/", {"type": "bug", "text": "x", "org": "{bad}"}, "org", "client"),
]


def _fill(value: Any, bad: str) -> Any:
    if isinstance(value, str):
        return bad if value == "{bad}" else value
    if isinstance(value, dict):
        return {key: _fill(item, bad) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, bad) for item in value]
    return value


@pytest.mark.parametrize("bad", BAD, ids=repr)
@pytest.mark.parametrize(
    ("method", "path", "body", "field", "who"),
    [pytest.param(*case, id=f"{case[0]} {case[1]} {case[3]}") for case in CASES],
)
def test_names_and_keys__control_character__400_naming_the_field_nothing_written(
    request: pytest.FixtureRequest,
    admin_api: APIClient,
    client_api: APIClient,
    cohort: None,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    who: str,
    bad: str,
) -> None:
    client = admin_api if who == "admin" else client_api
    if "{plan}" in path:
        path = path.replace("{plan}", str(request.getfixturevalue("plan_id")))
    audit_rows = AuditEntry.objects.count()
    feedback_rows = FeedbackItem.objects.count()
    response = client.generic(
        method,
        path,
        json.dumps(_fill(body, bad)),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert AuditEntry.objects.count() == audit_rows
    assert FeedbackItem.objects.count() == feedback_rows


@pytest.mark.parametrize("bad", MORE_BAD, ids=repr)
def test_plan_name__other_control_characters__400(
    admin_api: APIClient, plan_id: int, bad: str
) -> None:
    response = admin_api.patch(f"/api/v1/plans/{plan_id}/", {"name": bad}, format="json")
    assert response.status_code == 400, response.content
    assert "name" in response.json()["error"]["fields"]


def test_schema__names_document_the_single_line_pattern(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    pattern = schema["PatchedPlanChangeInputRequest"]["properties"]["name"]["pattern"]
    assert pattern.startswith("^[^\\u0000-\\u001f")
    assert schema["GuardrailInputRequest"]["properties"]["name"]["pattern"] == pattern


def test_free_text__line_breaks_and_tabs__accepted(admin_api: APIClient) -> None:
    description = "Line one\n\tindented line two\r\n"
    response = admin_api.post(
        "/api/v1/flags/", {"key": "f3", "description": description}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["description"] == description


def test_team_email__subject_with_a_line_break__sent_on_one_line(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        notify(event="plan.rollback", subject="[plan] Launch\nBcc: evil@example.com", text="t")
    (message,) = mail.outbox
    assert message.subject == "[plan] Launch Bcc: evil@example.com"
    assert message.bcc == []


def test_kickoff_email__plan_name_stored_with_a_line_break__sent_on_one_line(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A name stored before names were checked (or through the admin) still gets its e-mail."""
    for key in COHORTS:
        flag_services.cohort_create(key=key, actor=SYSTEM, contacts=["org@example.com"])
    for key in ("scenes", "reports", "dragdrop"):
        flag_services.flag_create(key=key, actor=SYSTEM)
    plan = plan_create_from_template(
        template_key="feature-release",
        name="Launch\r\nBcc: evil@example.com",
        actor=SYSTEM,
        flags={"basic": "scenes", "reporting": "reports", "drag_drop": "dragdrop"},
        cohorts={key: key for key in COHORTS},
    )
    phase = next(p for p in plan.phases.order_by("position") if phase_contacts(p))
    with django_capture_on_commit_callbacks(execute=True):
        assert send_kickoff(phase) == ["org@example.com"]
    (message,) = mail.outbox
    assert message.subject.startswith("Launch Bcc: evil@example.com - ")
    assert message.bcc == []
    send_email(subject="Launch\r\n\x0b- kickoff", body="Hello", recipients=["org@example.com"])
    assert mail.outbox[1].subject == "Launch - kickoff"  # a task queued before the fix


SENT = "  indented\nline  \n"


def test_feedback_api__text_with_surrounding_whitespace__stored_and_returned_as_sent(
    client_api: APIClient, admin_api: APIClient
) -> None:
    response = client_api.post("/api/v1/feedback/", {"type": "bug", "text": SENT}, format="json")
    assert response.status_code == 201, response.content
    item = FeedbackItem.objects.get(pk=response.json()["id"])
    assert item.text == SENT
    assert admin_api.get(f"/api/v1/feedback/{item.pk}/").json()["text"] == SENT
    comment = admin_api.post(f"/api/v1/feedback/{item.pk}/comments/", {"text": SENT}, format="json")
    assert comment.status_code == 201, comment.content
    assert FeedbackComment.objects.get(item=item).text == SENT


def test_feedback_api__whitespace_only_text__400_naming_text(client_api: APIClient) -> None:
    response = client_api.post("/api/v1/feedback/", {"type": "bug", "text": " \n "}, format="json")
    assert response.status_code == 400
    assert "text" in response.json()["error"]["fields"]


def test_feedback_pages__text_filed_in_the_dashboard__kept_and_shown_preformatted(
    client: Client, support_user: object
) -> None:
    client.force_login(support_user)
    response = client.post("/feedback/new/", {"type": "bug", "text": SENT})
    assert response.status_code == 302, response.content[-2000:]
    item = FeedbackItem.objects.get()
    assert item.text == SENT
    page = client.get(f"/feedback/{item.pk}/").content.decode()
    assert f'data-testid="feedback-text">{SENT}</div>' in page
    feedback_create(type="question", text=SENT, actor=SYSTEM)
    queue = client.get("/feedback/").content.decode()
    assert f'<span class="fb-snippet">{SENT}</span>' in queue
    css = b"".join(client.get("/static/feedback/feedback.css").streaming_content).decode()
    assert ".fb-snippet { overflow-wrap: anywhere; white-space: pre-wrap; }" in css
