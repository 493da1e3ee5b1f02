"""Tokens and the trust boundary (issue 13, points 4 and 7): what each scope may do, who may tie a
token to whom, and that a token acts with its person's current standing."""

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from flags import services as flag_services
from monitoring.models import MetricSample
from phases import services as phase_services
from phases.models import Decision, Phase, SignOff
from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken, AuditEntry
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT
from rollout_control.core.services import (
    api_token_create,
    api_token_revoke,
    person_delete,
    user_deactivate,
    user_role_remove,
)
from tests.phases.conftest import COHORTS, SYSTEM, release_flags, two_flag_release
from tests.processes import child_env, free_port, gunicorn, running, wait_http

__all__ = ["release_flags"]  # the fixture, used by name

WHOAMI = "/api/v1/whoami/"
TOKENS = "/api/v1/tokens/"
METRICS = "/api/v1/metrics/"
SAMPLES = {"samples": [{"metric": "data_corruption", "value": 1}]}


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _logged_in(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _superuser() -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")


# Scopes ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_push__client_token__403_naming_ingest_nothing_stored(
    client_api: APIClient,
) -> None:
    response = client_api.post(METRICS, SAMPLES, format="json")
    assert response.status_code == 403
    assert "ingest or admin" in response.json()["error"]["message"]
    assert not MetricSample.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("principal", ["ingest_api", "admin_api"])
def test_metrics_push__ingest_or_admin_token__201_stored(
    principal: str, request: pytest.FixtureRequest
) -> None:
    client = request.getfixturevalue(principal)
    response = client.post(METRICS, SAMPLES, format="json")
    assert response.status_code == 201, response.json()
    assert MetricSample.objects.filter(metric="data_corruption").count() == 1


@pytest.mark.django_db
def test_metrics_push__sessions__release_manager_201_support_403(
    release_manager: Any, support_user: Any
) -> None:
    assert _logged_in(release_manager).post(METRICS, SAMPLES, format="json").status_code == 201
    assert _logged_in(support_user).post(METRICS, SAMPLES, format="json").status_code == 403
    assert MetricSample.objects.count() == 1


@pytest.mark.django_db
def test_ingest_token__ofrep__403(ingest_token: str) -> None:
    flag_services.flag_create(key="scenes", actor=SYSTEM)
    client = Client(headers={"Authorization": f"Bearer {ingest_token}"})
    body = json.dumps({"context": {"targetingKey": "u-1"}})
    for url in ("/ofrep/v1/evaluate/flags/scenes", "/ofrep/v1/evaluate/flags"):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 403, url
        assert "ingest" in response.json()["errorDetails"]


@pytest.mark.django_db
def test_ingest_token__client_endpoints__403_but_whoami_200(ingest_api: APIClient) -> None:
    flag_services.flag_create(key="scenes", actor=SYSTEM)
    flag_services.cohort_create(key="beta", name="Beta", actor=SYSTEM)
    flag_services.cohort_update(key="beta", changes={"opt_in": True}, actor=SYSTEM)
    refused = {
        "/api/v1/evaluate/": {"context": {"targetingKey": "u-1"}},
        "/api/v1/events/": {"events": [{"unit": "u-1", "flag": "scenes", "action": "exposure"}]},
        "/api/v1/feedback/": {"type": "feature_request", "text": "More colours"},
        "/api/v1/cohorts/beta/opt-in/": {"unit": "u-1"},
        TOKENS: {"name": "x", "scope": "ingest"},
    }
    for url, body in refused.items():
        response = ingest_api.post(url, body, format="json")
        assert response.status_code == 403, url
    assert ingest_api.get("/api/v1/flags/").status_code == 403
    assert ingest_api.get(METRICS).status_code == 403  # reading metrics is staff's
    assert ingest_api.get(WHOAMI).json()["scope"] == "ingest"
    assert not AuditEntry.objects.filter(actor_type="token").exists()


@pytest.mark.django_db
def test_create_api_token_command__scope_ingest__token_pushes_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("create_api_token", "--scope", "ingest", "--name", "reporter")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert ApiToken.objects.get(name="reporter").scope == "ingest"
    assert _bearer(raw).post(METRICS, SAMPLES, format="json").status_code == 201


@pytest.mark.django_db
def test_token_api__scope_ingest__created(admin_api: APIClient) -> None:
    response = admin_api.post(TOKENS, {"name": "reporter", "scope": "ingest"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["scope"] == "ingest"
    assert (
        _bearer(response.json()["token"]).post(METRICS, SAMPLES, format="json").status_code == 201
    )


# Who may tie a token to whom -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["session", "own_token"])
def test_token_create__for_another_user__403_nothing_written(
    how: str, release_manager: Any, support_user: Any, admin_api: APIClient
) -> None:
    client = _logged_in(release_manager) if how == "session" else admin_api
    audited = AuditEntry.objects.count()
    tokens = ApiToken.objects.count()
    response = client.post(
        TOKENS, {"name": "as-sam", "scope": "admin", "user": "sam"}, format="json"
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "user" in error["fields"]
    assert (ApiToken.objects.count(), AuditEntry.objects.count()) == (tokens, audited)


@pytest.mark.django_db
def test_token_create__for_yourself__201_tied(admin_api: APIClient) -> None:
    response = admin_api.post(
        TOKENS, {"name": "mine", "scope": "admin", "user": "rita"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["user"] == "rita"


@pytest.mark.django_db
def test_token_create__superuser_for_another_user__201_audited(support_user: Any) -> None:
    root = _superuser()
    response = _logged_in(root).post(
        TOKENS, {"name": "for-sam", "scope": "admin", "user": "sam"}, format="json"
    )
    assert response.status_code == 201, response.json()
    entry = AuditEntry.objects.get(action="api_token.create", object_id=str(response.json()["id"]))
    assert (entry.actor_user_id, entry.actor_label) == (root.pk, "root")
    assert entry.after["user"] == "sam"
    assert entry.reason == "tied to sam by a superuser"


@pytest.mark.django_db
def test_token_create__untied_admin_token_for_a_person__403(release_manager: Any) -> None:
    _, raw = api_token_create(name="robot", scope="admin", actor=Actor.system())
    robot = _bearer(raw)
    for user in ("rita", "root"):
        if user == "root":
            _superuser()
        body = {"name": "as-person", "scope": "admin", "user": user}
        assert robot.post(TOKENS, body, format="json").status_code == 403
    assert not ApiToken.objects.filter(name="as-person").exists()
    # Automation may still make tokens for automation.
    assert robot.post(TOKENS, {"name": "ci", "scope": "client"}, format="json").status_code == 201


# A token acts with its person's current standing ---------------------------------------------


@pytest.mark.django_db
def test_admin_token__user_demoted_outside_any_service__403_at_once(
    release_manager: Any, admin_api: APIClient
) -> None:
    flag_services.flag_create(key="loose", actor=SYSTEM)
    assert admin_api.get(TOKENS).status_code == 200  # this process's snapshot is warm
    # A change no service saw (a shell, SQL): no revocation, no config-version bump.
    release_manager.groups.remove(Group.objects.get(name=RELEASE_MANAGER))
    response = admin_api.patch("/api/v1/flags/loose/", {"description": "x"}, format="json")
    assert response.status_code == 403
    assert "rita" in response.json()["error"]["message"]
    assert admin_api.post(TOKENS, {"name": "x", "scope": "admin"}, format="json").status_code == 403
    assert admin_api.get(WHOAMI).json()["roles"] == []


@pytest.mark.django_db
def test_admin_token__user_without_release_role__support_actions_only(
    support_user: Any, release_flags: dict[str, str]
) -> None:
    _, raw = api_token_create(name="sam-ops", scope="admin", user=support_user, actor=SYSTEM)
    sam = _bearer(raw)
    assert sam.get("/api/v1/flags/").status_code == 200  # support reads
    assert sam.post(TOKENS, {"name": "x", "scope": "client"}, format="json").status_code == 403
    patched = sam.patch("/api/v1/flags/scenes/", {"description": "x"}, format="json")
    assert patched.status_code == 403
    assert sam.post(METRICS, SAMPLES, format="json").status_code == 403


@pytest.mark.django_db
def test_admin_token__user_deactivated_outside_any_service__401_at_once(
    release_manager: Any, admin_api: APIClient
) -> None:
    assert admin_api.get(TOKENS).status_code == 200
    get_user_model().objects.filter(pk=release_manager.pk).update(is_active=False)
    response = admin_api.get(TOKENS)
    assert response.status_code == 401
    assert "inactive" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_user_deactivate__tokens_revoked_audited__every_path_401(
    release_manager: Any, admin_token: str
) -> None:
    flag_services.flag_create(key="scenes", actor=SYSTEM)
    _, client_raw = api_token_create(
        name="rita-app", scope="client", user=release_manager, actor=SYSTEM
    )
    ofrep = Client(headers={"Authorization": f"Bearer {client_raw}"})
    ofrep_url = "/ofrep/v1/evaluate/flags/scenes"
    body = json.dumps({"context": {"targetingKey": "u-1"}})
    assert ofrep.post(ofrep_url, body, content_type="application/json").status_code == 200
    root = _superuser()

    user_deactivate(user=release_manager, actor=Actor.for_user(root))

    assert _bearer(admin_token).get(WHOAMI).status_code == 401
    assert _bearer(client_raw).post("/api/v1/evaluate/", {}, format="json").status_code == 401
    assert ofrep.post(ofrep_url, body, content_type="application/json").status_code == 401
    assert not ApiToken.objects.filter(user=release_manager, revoked_at__isnull=True).exists()
    revokes = AuditEntry.objects.filter(action="api_token.revoke")
    assert sorted(revokes.values_list("object_repr", flat=True)) == [
        *sorted(str(t) for t in ApiToken.objects.filter(user=release_manager))
    ]
    assert {(e.reason, e.actor_label) for e in revokes} == {("user deactivated", "root")}
    assert AuditEntry.objects.filter(action="user.update").count() == 1


@pytest.mark.django_db
def test_user_role_remove__tokens_revoked_audited(
    release_manager: Any, admin_api: APIClient
) -> None:
    user_role_remove(user=release_manager, role=RELEASE_MANAGER, actor=SYSTEM)
    assert admin_api.get(WHOAMI).status_code == 401
    entry = AuditEntry.objects.get(action="api_token.revoke")
    assert entry.reason == "user lost the release_manager role"
    user_entry = AuditEntry.objects.get(action="user.update")
    assert (user_entry.before["groups"], user_entry.after["groups"]) == ([RELEASE_MANAGER], [])


def _user_form(user: Any, **changes: Any) -> dict[str, Any]:
    """The admin's user change form as the page would post it, with `changes` applied."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "is_staff": "on",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "user_permissions": [],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "_save": "Save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"is_active": None}, "user deactivated"),
        ({"groups": []}, "user lost the release_manager role"),
    ],
)
def test_admin_user_page__deactivate_or_demote__tokens_revoked_one_user_row(
    change: dict[str, Any], reason: str, release_manager: Any, admin_api: APIClient
) -> None:
    root = _superuser()
    browser = Client()
    browser.force_login(root)
    response = browser.post(
        f"/admin/auth/user/{release_manager.pk}/change/", _user_form(release_manager, **change)
    )
    assert response.status_code == 302, response.content[:2000]
    assert admin_api.get(WHOAMI).status_code == 401
    revoke = AuditEntry.objects.get(action="api_token.revoke")
    assert (revoke.reason, revoke.actor_label) == (reason, "root")
    assert AuditEntry.objects.filter(action="user.update").count() == 1


@pytest.mark.django_db
def test_admin_user_page__unrelated_change__tokens_kept(
    release_manager: Any, admin_api: APIClient
) -> None:
    browser = Client()
    browser.force_login(_superuser())
    form = _user_form(release_manager, email="rita@example.com")
    assert browser.post(f"/admin/auth/user/{release_manager.pk}/change/", form).status_code == 302
    assert admin_api.get(WHOAMI).status_code == 200
    assert not AuditEntry.objects.filter(action="api_token.revoke").exists()


@pytest.mark.django_db
def test_role_group_deleted__members_tokens_revoked(
    support_user: Any, release_manager: Any, admin_api: APIClient
) -> None:
    _, sam_raw = api_token_create(name="sam-ops", scope="admin", user=support_user, actor=SYSTEM)
    person_delete(obj=Group.objects.get(name=SUPPORT), actor=SYSTEM)
    assert _bearer(sam_raw).get(WHOAMI).status_code == 401
    assert admin_api.get(WHOAMI).status_code == 200  # rita was not in the group
    assert AuditEntry.objects.get(action="api_token.revoke").reason == "support role deleted"


# Sign-offs, decisions and the audit log name the token -----------------------------------------


@pytest.mark.django_db
def test_audit__action_with_tied_token__names_person_and_token(admin_api: APIClient) -> None:
    assert admin_api.post("/api/v1/flags/", {"key": "fresh"}, format="json").status_code == 201
    entry = AuditEntry.objects.get(action="flag.create")
    token = ApiToken.objects.get(name="ops")
    assert (entry.actor_type, entry.actor_token_id, entry.actor_user_id) == (
        "token",
        token.pk,
        token.user_id,
    )
    assert entry.actor_label == "rita (token ops)"


@pytest.mark.django_db
def test_sign_off_and_decision__with_token__record_token(
    release_flags: dict[str, str], release_manager: Any, admin_api: APIClient
) -> None:
    plan = phase_services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        cohorts={c: c for c in COHORTS},
        actor=SYSTEM,
    )
    plan = phase_services.plan_activate(plan=plan, actor=SYSTEM)
    token = ApiToken.objects.get(name="ops")

    signed = admin_api.post(f"/api/v1/plans/{plan.pk}/sign-off/", {}, format="json")
    assert signed.status_code == 201, signed.json()
    assert signed.json()["token"] == {"id": token.pk, "name": "ops"}
    assert signed.json()["user"] == "rita"
    row = SignOff.objects.get()
    assert (row.token_id, row.token_name, row.user_id) == (token.pk, "ops", release_manager.pk)
    review = admin_api.post(f"/api/v1/plans/{plan.pk}/run-gate/").json()
    assert review["signoffs"][0]["token"] == {"id": token.pk, "name": "ops"}

    decided = admin_api.post(
        f"/api/v1/plans/{plan.pk}/decide/", {"decision": "no_go", "comment": "wait"}, format="json"
    )
    assert decided.status_code == 200, decided.json()
    assert decided.json()["token"] == {"id": token.pk, "name": "ops"}
    decision = Decision.objects.get()
    assert (decision.token_id, decision.token_name) == (token.pk, "ops")

    for action in ("gate.sign_off", "gate.decide.no_go"):
        entry = AuditEntry.objects.get(action=action)
        assert entry.actor_token_id == token.pk
        assert entry.actor_label == "rita (token ops)"
        assert entry.after["token"] == {"id": token.pk, "name": "ops"}

    # The record outlives the token.
    api_token_revoke(token=token, actor=SYSTEM)
    token.delete()
    decision.refresh_from_db()
    assert (decision.token_id, decision.token_name) == (None, "ops")


@pytest.mark.django_db
def test_sign_off__in_a_session__no_token_recorded(
    release_flags: dict[str, str], release_manager: Any
) -> None:
    plan = phase_services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        cohorts={c: c for c in COHORTS},
        actor=SYSTEM,
    )
    plan = phase_services.plan_activate(plan=plan, actor=SYSTEM)
    signed = _logged_in(release_manager).post(
        f"/api/v1/plans/{plan.pk}/sign-off/", {}, format="json"
    )
    assert signed.status_code == 201
    assert signed.json()["token"] is None
    assert SignOff.objects.get(phase__plan=plan, phase__status=Phase.Status.ACTIVE).token_name == ""
    assert AuditEntry.objects.get(action="gate.sign_off").actor_label == "rita"


# Revocation reaches every worker ---------------------------------------------------------------

ACCESS_LINE = re.compile(r"^<(?P<pid>\d+)> (?P<status>\d{3}) n=(?P<n>\d+)$")


def _whoami_status(base: str, raw: str, n: int) -> int:
    request = urllib.request.Request(
        f"{base}{WHOAMI}?n={n}", headers={"Authorization": f"Bearer {raw}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _served(log: Path) -> list[tuple[int, int, int]]:
    """(worker pid, status, request number) for each request in the access log."""
    rows = []
    for line in log.read_text().splitlines():
        match = ACCESS_LINE.match(line.strip())
        if match:
            rows.append((int(match["pid"]), int(match["status"]), int(match["n"])))
    return rows


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_revocation__two_gunicorn_workers__both_answer_401_within_a_second(
    tmp_path: Path,
) -> None:
    token, raw = api_token_create(name="app", scope="client", actor=SYSTEM)
    port = free_port()
    access = tmp_path / "access.log"
    env = child_env(WEB_CONCURRENCY="2", GUNICORN_ACCESS_LOG=str(access))
    # The access log names the worker (pid) that served each numbered request.
    command = [*gunicorn(port), "--access-logformat", "%(p)s %(s)s %(q)s"]
    base = f"http://127.0.0.1:{port}"
    sent_at: dict[int, float] = {}
    with running(command, env=env, log=tmp_path / "gunicorn.log") as server:
        wait_http(f"{base}/healthz", 60, server)
        n = 0
        deadline = time.monotonic() + 30
        while len({pid for pid, status, _ in _served(access) if status == 200}) < 2:
            assert time.monotonic() < deadline, "both workers never answered"
            n += 1
            assert _whoami_status(base, raw, n) == 200
        revoked_from = n + 1
        api_token_revoke(token=token, actor=SYSTEM)
        started = time.monotonic()
        while time.monotonic() - started < 5:
            n += 1
            sent_at[n] = time.monotonic() - started
            _whoami_status(base, raw, n)
            time.sleep(0.01)
        rows = [row for row in _served(access) if row[2] >= revoked_from]
    pids = {pid for pid, _, _ in rows}
    assert len(pids) == 2, f"after revoking, requests reached workers {pids}"
    reached: dict[int, float] = {}
    for pid in pids:
        mine = sorted((n, status) for p, status, n in rows if p == pid)
        last_200 = max((n for n, status in mine if status == 200), default=None)
        first_401_after = min(n for n, status in mine if status == 401 and n > (last_200 or 0))
        assert all(status == 401 for n, status in mine if n >= first_401_after)
        reached[pid] = sent_at[first_401_after]
    slowest = max(reached.values())
    print(f"\nrevocation -> 401 on every worker: {slowest:.3f} s ({sorted(reached.values())})")
    assert slowest < 1.0
