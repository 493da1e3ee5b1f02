from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken, AuditEntry
from rollout_control.core.selectors import token_hash
from rollout_control.core.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami/"
TOKENS = "/api/v1/tokens/"


def _client(**headers: str) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def test_token__bearer_header__authenticates(client_token: str) -> None:
    response = _client(HTTP_AUTHORIZATION=f"Bearer {client_token}").get(WHOAMI)
    assert response.status_code == 200
    assert response.json()["kind"] == "token"
    assert response.json()["scope"] == "client"


def test_token__x_api_key_header__authenticates(client_token: str) -> None:
    response = _client(HTTP_X_API_KEY=client_token).get(WHOAMI)
    assert response.status_code == 200
    assert response.json()["name"] == "app"


def test_token__stored_as_sha256_only(client_token: str) -> None:
    token = ApiToken.objects.get(name="app")
    assert token.key_hash == token_hash(client_token)
    assert client_token not in str(list(ApiToken.objects.values()))
    assert len(client_token) >= 43  # 256 bits, url-safe base64


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_token__wrong_secret__401_in_error_shape(header: str) -> None:
    value = "Bearer rc_nope" if header == "HTTP_AUTHORIZATION" else "rc_nope"
    response = _client(**{header: value}).get(WHOAMI)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "authentication_failed"


def test_token__no_credentials__401() -> None:
    response = APIClient().get(WHOAMI)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_token__expired__401() -> None:
    token, raw = api_token_create(name="old", scope="client", actor=Actor.system())
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(WHOAMI).status_code == 401


def test_token__revoked__401() -> None:
    token, raw = api_token_create(name="gone", scope="client", actor=Actor.system())
    assert _client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(WHOAMI).status_code == 200
    api_token_revoke(token=token, actor=Actor.system())
    assert _client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(WHOAMI).status_code == 401


def test_token__client_scope_on_admin_endpoint__403(client_api: APIClient) -> None:
    response = client_api.get(TOKENS)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_token__admin_scope__can_do_client_and_admin_things(admin_api: APIClient) -> None:
    assert admin_api.get(WHOAMI).status_code == 200
    assert admin_api.get(TOKENS).status_code == 200


def test_token__tied_to_user__acts_for_that_user(admin_api: APIClient) -> None:
    body = admin_api.get(WHOAMI).json()
    assert body["user"] == "rita"
    assert body["roles"] == ["release_manager"]


def test_session__support_user_on_release_manager_action__403(support_user: object) -> None:
    client = APIClient()
    client.force_login(support_user)
    assert client.get(WHOAMI).status_code == 200
    assert client.post(TOKENS, {"name": "x", "scope": "client"}, format="json").status_code == 403
    assert not ApiToken.objects.filter(name="x").exists()


def test_session__release_manager__creates_token_shown_once(release_manager: object) -> None:
    client = APIClient()
    client.force_login(release_manager)
    response = client.post(TOKENS, {"name": "ci", "scope": "admin", "user": "rita"}, format="json")
    assert response.status_code == 201
    raw = response.json()["token"]
    assert _client(HTTP_X_API_KEY=raw).get(TOKENS).status_code == 200
    listed = client.get(TOKENS).json()["results"]
    assert all("token" not in row for row in listed)


def test_token_create__bad_scope__400_naming_field(admin_api: APIClient) -> None:
    before = ApiToken.objects.count()
    response = admin_api.post(TOKENS, {"name": "x", "scope": "root"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "scope" in error["fields"]
    assert error["message"].startswith("scope:")
    assert ApiToken.objects.count() == before


def test_token_create__malformed_json__400(admin_api: APIClient) -> None:
    response = admin_api.generic("POST", TOKENS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_token_revoke__twice__one_audit_entry(admin_api: APIClient) -> None:
    token, _ = api_token_create(name="t", scope="client", actor=Actor.system())
    for _ in range(2):
        assert admin_api.post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200
    entries = AuditEntry.objects.filter(action="api_token.revoke", object_id=str(token.pk))
    assert entries.count() == 1
    entry = entries.get()
    assert entry.actor_type == "token"
    assert entry.actor_label == "rita (token ops)"
    assert entry.before["revoked_at"] is None
    assert entry.after["revoked_at"] is not None
    assert entry.request_id


def test_create_api_token_command__prints_token_last(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_api_token", "--scope", "client", "--name", "cli")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    assert _client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(WHOAMI).json()["name"] == "cli"
    entry = AuditEntry.objects.get(action="api_token.create", object_repr__startswith="cli")
    assert entry.actor_type == "system"


def test_create_api_token_command__unknown_user__fails() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_token", "--scope", "admin", "--name", "x", "--user", "ghost")
    assert not ApiToken.objects.filter(name="x").exists()


def test_token_use__batched__last_used_written_on_flush(client_token: str) -> None:
    from rollout_control.core.tokens import flush_token_usage

    flush_token_usage(force=True)
    for _ in range(3):
        assert _client(HTTP_X_API_KEY=client_token).get(WHOAMI).status_code == 200
    token = ApiToken.objects.get(name="app")
    assert token.last_used_at is None  # nothing written per request
    assert flush_token_usage(force=True) == 1
    token.refresh_from_db()
    assert token.last_used_at is not None
