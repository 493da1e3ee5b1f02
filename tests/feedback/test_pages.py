"""The support queue pages through Django's test client (the browser test covers the rest)."""

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from feedback.models import FeedbackItem
from flags.models import Flag
from phases.models import RolloutPlan
from rollout_control.core.models import AuditEntry
from tests.feedback.conftest import FLAG, START, file

pytestmark = pytest.mark.django_db
SCRIPT = '<script>alert("pwned")</script>'


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_queue__anonymous__sent_to_log_in(client: Client) -> None:
    response = client.get("/feedback/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/feedback/"


def test_queue__user_without_a_role__403(client: Client, django_user_model: object) -> None:
    client.force_login(django_user_model.objects.create_user(username="eve", password="x"))
    assert client.get("/feedback/").status_code == 403
    assert client.get("/feedback/export.csv").status_code == 403


def test_queue__open_items_by_due_time_with_text_escaped(support_user: object) -> None:
    with time_machine.travel(START, tick=False):
        praise = file(type="praise", text="Nice")
        blocker = file(type="blocker", text=SCRIPT)
        done = file(type="bug", text="Old news")
    for status in ("triaged", "resolved"):
        _client(support_user).post(f"/feedback/{done.pk}/status/", {"status": status})

    html = _client(support_user).get("/feedback/").content.decode()
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert html.index(f"#{blocker.pk}<") < html.index(f"#{praise.pk}<")  # due first
    assert f"#{done.pk}<" not in html  # the queue opens on open items
    assert "2 items match." in html
    assert '<label for="id_q">Search</label>' in html


def test_queue__htmx_filter__partial_with_out_of_band_count(support_user: object) -> None:
    file(type="blocker", text="Crash")
    file(type="praise", text="Nice")
    response = _client(support_user).get(
        "/feedback/", {"priority": "critical"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and "<h1>" not in html
    assert "Crash" in html and "Nice" not in html
    assert 'hx-swap-oob="innerHTML"' in html and "1 item matches." in html


def test_queue__filters_from_the_dashboard_links(support_user: object, beta_flag: str) -> None:
    file(type="bug", text="Mine", flag_key=FLAG, unit="u-beta")
    file(type="bug", text="Theirs", unit="u-other")
    html = _client(support_user).get("/feedback/", {"unit": "u-beta"}).content.decode()
    assert "Mine" in html and "Theirs" not in html
    html = _client(support_user).get("/feedback/", {"flag": FLAG}).content.decode()
    assert "Mine" in html and "Theirs" not in html


def test_queue__overdue_filter(support_user: object) -> None:
    with time_machine.travel(START, tick=False) as clock:
        file(type="blocker", text="Late one")
        file(type="praise", text="Not due")
        clock.shift(timedelta(hours=2))
        html = _client(support_user).get("/feedback/", {"overdue": "on"}).content.decode()
    assert "Late one" in html and "Not due" not in html
    assert "overdue</span>" in html


def test_bulk__htmx__changes_items_and_reports(support_user: object) -> None:
    first, second = file(), file()
    response = _client(support_user).post(
        "/feedback/bulk/",
        {"ids": [first.pk, second.pk], "action": "status", "status": "triaged", "query": ""},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Changed to triaged: 2 item(s)." in html
    assert set(FeedbackItem.objects.values_list("status", flat=True)) == {"triaged"}
    assert AuditEntry.objects.filter(action="feedback.status", actor_label="sam").count() == 2


def test_bulk__without_javascript__redirects_back_with_filters(support_user: object) -> None:
    item = file()
    client = _client(support_user)
    response = client.post(
        "/feedback/bulk/",
        {"ids": [item.pk], "action": "assign", "assignee": "sam", "query": "priority=high"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/feedback/?priority=high"
    assert FeedbackItem.objects.get().assignee == support_user
    response = client.post("/feedback/bulk/", {"action": "assign", "assignee": "sam"}, follow=True)
    assert "Tick at least one item." in response.content.decode()


def test_export__csv_of_the_filtered_queue_formulas_neutralised(support_user: object) -> None:
    file(type="blocker", text='=HYPERLINK("http://evil")', unit="u-1")
    file(type="praise", text="Nice")
    response = _client(support_user).get("/feedback/export.csv", {"priority": "critical"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="feedback-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil")'
    assert (rows[0]["priority"], rows[0]["unit"], rows[0]["status"]) == ("critical", "u-1", "new")


def test_detail__support_sees_no_flag_change_only_a_request(
    support_user: object, release_manager: object, live_plan: RolloutPlan
) -> None:
    item = file(type="blocker", text=SCRIPT, flag_key=FLAG, unit="u-beta")
    html = _client(support_user).get(f"/feedback/{item.pk}/").content.decode()
    assert SCRIPT not in html
    assert "Ask to exclude the unit" in html
    assert "Exclude the unit" not in html
    assert _client(support_user).post(f"/feedback/{item.pk}/exclude-unit/").status_code == 403
    assert Flag.objects.get(name=FLAG).excluded_units == []

    html = _client(release_manager).get(f"/feedback/{item.pk}/").content.decode()
    assert "Exclude the unit" in html
    assert "will be <strong>paused</strong>" in html
    response = _client(release_manager).post(
        f"/feedback/{item.pk}/exclude-unit/", {"reason": ""}, follow=True
    )
    assert "on the flag&#x27;s exclusion list" in response.content.decode()
    assert Flag.objects.get(name=FLAG).excluded_units == ["u-beta"]


def test_detail__triage_forms_change_the_item_and_show_history(support_user: object) -> None:
    item = file(type="bug", text="Broken export")
    client = _client(support_user)
    response = client.post(f"/feedback/{item.pk}/status/", {"status": "resolved"}, follow=True)
    assert "Cannot go from new to resolved" in response.content.decode()
    client.post(f"/feedback/{item.pk}/status/", {"status": "triaged"})
    client.post(f"/feedback/{item.pk}/priority/", {"priority": "low", "reason": "cosmetic"})
    client.post(f"/feedback/{item.pk}/assign/", {"assignee": "sam"})
    client.post(f"/feedback/{item.pk}/comment/", {"text": SCRIPT})
    response = client.post(f"/feedback/{item.pk}/priority/", {"priority": "high"}, follow=True)
    html = response.content.decode()
    assert "Why: This field is required." in html
    item.refresh_from_db()
    assert (item.status, item.priority, item.assignee) == ("triaged", "low", support_user)
    assert "new → triaged" in html and "high → low" in html and "nobody → sam" in html
    assert SCRIPT not in html


def test_create__staff_file_feedback_from_the_dashboard(support_user: object) -> None:
    client = _client(support_user)
    response = client.post("/feedback/new/", {"type": "blocker", "text": "Phoned in", "rating": ""})
    item = FeedbackItem.objects.get()
    assert response["Location"] == f"/feedback/{item.pk}/"
    assert (item.source, item.submitted_by, item.priority) == ("dashboard", "sam", "critical")
    response = client.post("/feedback/new/", {"type": "bug", "text": "x", "flag": "nope"})
    assert response.status_code == 400
    assert "No flag with key" in response.content.decode()
    assert FeedbackItem.objects.count() == 1


def test_queue_and_export__queries_do_not_grow_with_the_rows(
    support_user: object, release_manager: object
) -> None:
    client = _client(support_user)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
        return len(captured)

    item = file(type="bug")
    client.post("/feedback/bulk/", {"ids": [item.pk], "action": "assign", "assignee": "rita"})
    few = queries("/feedback/"), queries("/feedback/export.csv")
    for n in range(20):
        file(type="bug", text=f"bug {n}")
    client.post(
        "/feedback/bulk/",
        {"ids": list(FeedbackItem.objects.values_list("pk", flat=True)), "action": "assign",
         "assignee": "sam"},
    )  # fmt: skip
    assert (queries("/feedback/"), queries("/feedback/export.csv")) == few
