import ipaddress

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db


def test_healthz__process_running__200(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz__database_and_broker_up__200(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_readyz__broker_on_closed_port__503_naming_broker(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error:")


def test_metrics__from_loopback__served(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"rollout_control_http_requests_total" in response.content


def test_metrics__from_outside__403(client: Client) -> None:
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403


@override_settings(METRICS_ALLOWED_CIDRS=[ipaddress.ip_network("10.0.0.0/8")])
def test_metrics__from_allowed_network__served(client: Client) -> None:
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="11.1.2.3").status_code == 403


@override_settings(METRICS_TOKEN="s3cret-metrics")
def test_metrics__with_metrics_token__served(client: Client) -> None:
    ok = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer s3cret-metrics"
    )
    bad = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer wrong")
    assert (ok.status_code, bad.status_code) == (200, 403)


def test_metrics__counts_requests_by_view(client: Client) -> None:
    labels = {"view": "healthz", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("rollout_control_http_requests_total", labels) or 0
    for _ in range(3):
        client.get("/healthz")
    assert REGISTRY.get_sample_value("rollout_control_http_requests_total", labels) == before + 3


def test_api_unknown_path__json_404(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_schema_and_docs__served(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/tokens/" in schema.json()["paths"]
    assert "apiToken" in schema.json()["components"]["securitySchemes"]


def test_schema__tells_what_the_api_checks(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    # A DELETE that takes a body says so, and that it is required.
    for path in ("/api/v1/cohorts/{key}/members/", "/api/v1/cohorts/{key}/opt-in/"):
        body = paths[path]["delete"]["requestBody"]
        assert body["required"] is True and list(body["content"]) == ["application/json"]
    # Versioned edits: If-Match has a pattern, the body a version, both conflicts a response.
    for path, method in (("/api/v1/flags/{key}/", "patch"), ("/api/v1/plans/{id}/", "patch")):
        operation = paths[path][method]
        header = next(p for p in operation["parameters"] if p["name"] == "If-Match")
        assert header["schema"]["pattern"]
        assert {"409", "412", "415"} <= set(operation["responses"])
        body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert components[body.rsplit("/", 1)[1]]["properties"]["version"]["minimum"] == 1
    plan = components["PlanCreateInputRequest"]["properties"]
    assert "feature-release" in components[plan["template"]["$ref"].rsplit("/", 1)[1]]["enum"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn.jsdelivr" not in docs.content  # served from our own static files


def test_roles__created_by_migration() -> None:
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"release_manager", "support"}


def test_dashboard__anonymous__redirected_to_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login__repeated_failures__locked_out_and_logged(
    client: Client, release_manager: object, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        client.post("/accounts/login/", {"username": "rita", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert any("Locking out" in record.getMessage() for record in caplog.records)


def test_login__right_password__reaches_home(client: Client, release_manager: object) -> None:
    response = client.post(
        "/accounts/login/", {"username": "rita", "password": "pw-rita"}, follow=True
    )
    assert response.status_code == 200
    assert b"release manager" in response.content


def test_oversize_body__413_in_error_shape(client: Client, settings: object) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/api/v1/metrics/", "x" * 2000, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_api_too_many_query_fields__json_400(admin_api: object, settings: object) -> None:
    # Regression (found by tests/test_fuzz_api.py): Django's own 400 (a SuspiciousOperation
    # raised while it parses the request) answered an HTML page on the API. The API reads JSON
    # bodies only now, so the query string is where Django's field limit still applies.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    query = "&".join(f"f{i}=x" for i in range(10))
    response = admin_api.get(f"/api/v1/cohorts/?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "bad_request"


def test_api_form_body__415_in_error_shape(admin_api: object) -> None:
    # The API parses JSON only: a form body cannot say 5 from "5" or carry a list of rules.
    response = admin_api.post(
        "/api/v1/cohorts/", "key=beta", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_dashboard_post_without_csrf__403(release_manager: object) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(release_manager)
    assert client.post("/accounts/logout/").status_code == 403
