"""No input reaches a 500 (issue 14, points 0 and 5): each hostile shape, sent to every endpoint.

The API's operations are read from its own OpenAPI schema, the pages' routes from the URL
resolver, so a new endpoint is covered without touching this file. Shapes: a NUL character in a
path (404) or a query parameter (400 naming it); a JSON body nested 1,000 levels deep, or past
the 32 levels the parser takes (400); a lone surrogate (the JSON text "\\udc00", what a browser
sends when it cuts a string mid-emoji) in a key or a value (400). The test client re-raises any
exception a view lets escape, so a 500 fails here with its traceback.
"""

import json
import re
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from feedback.services import feedback_create
from flags import services as flag_services
from phases.services import plan_create_from_template
from rollout_control.core.actors import Actor
from rollout_control.core.parsers import MAX_DEPTH
from rollout_control.core.services import api_token_create

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("hostile")
NUL = "%00"
DEEP = '{"x": ' + "[" * 1000 + "]" * 1000 + "}"
PAST_LIMIT = '{"x": ' + '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1) + "}"
SURROGATE_VALUE = '{"x": "\\udc00"}'
SURROGATE_KEY = '{"x": {"\\udc00": 1}}'
BODIES = {
    "nested 1,000 deep": DEEP,
    "nested past the limit": PAST_LIMIT,
    "lone surrogate in a value": SURROGATE_VALUE,
    "lone surrogate in a key": SURROGATE_KEY,
    "lone surrogate as a top-level key": '{"\\udc00": 1}',
}
COHORTS = ("internal", "external_beta", "open_beta", "power_users", "paying")


@cache
def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _params(operations: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    return [pytest.param(*op, id=f"{op[0]} {op[1]}") for op in operations]


API = [op for op in _operations() if op[1].startswith("/api/")]
WITH_PATH_PARAMETERS = _params([op for op in API if "{" in op[1]])
WITH_BODY = _params([op for op in _operations() if "requestBody" in op[2]])
QUERY = [
    pytest.param(method, path, parameter["name"], id=f"{method} {path}?{parameter['name']}")
    for method, path, operation in API
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query"
]


@pytest.fixture
def world(release_manager: object) -> dict[str, str]:
    """Something behind every path parameter, so a refusal is about the input, not a 404."""
    for key in COHORTS:
        flag_services.cohort_create(key=key, actor=SYSTEM, opt_in=True)
    for key in ("scenes", "reports", "dragdrop"):
        flag_services.flag_create(key=key, actor=SYSTEM, rollout_percentage=50)
    plan = plan_create_from_template(
        template_key="feature-release",
        name="Hostile",
        actor=SYSTEM,
        flags={"basic": "scenes", "reporting": "reports", "drag_drop": "dragdrop"},
        cohorts={key: key for key in COHORTS},
    )
    item = feedback_create(type="bug", text="It broke.", actor=SYSTEM, flag_key="scenes")
    token = api_token_create(name="victim", scope="client", actor=SYSTEM)[0]
    return {
        "key": "scenes",
        "name": "error_rate",
        "window_id": "1",
        "id": str(plan.pk),
        "/feedback/": str(item.pk),
        "/tokens/": str(token.pk),
        "/cohorts/": "internal",
    }


def _path(path: str, world: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        for prefix in ("/feedback/", "/tokens/", "/cohorts/"):
            if path.startswith(f"/api/v1{prefix}") and name in ("id", "key"):
                return world[prefix]
        return world[name]

    return re.sub(r"\{(\w+)\}", value, path)


def _send(client: Client, method: str, path: str, body: str | None = None) -> Any:
    return client.generic(method, path, body or "", content_type="application/json")


@pytest.mark.parametrize(("method", "path", "operation"), WITH_PATH_PARAMETERS)
def test_api__nul_in_every_path_parameter__404(
    admin_api: APIClient, method: str, path: str, operation: dict[str, Any]
) -> None:
    response = _send(admin_api, method, re.sub(r"\{\w+\}", NUL, path), "{}")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "path", "parameter"), QUERY)
def test_api__nul_in_every_query_parameter__400_naming_it(
    admin_api: APIClient, world: dict[str, str], method: str, path: str, parameter: str
) -> None:
    response = _send(admin_api, method, f"{_path(path, world)}?{parameter}={NUL}")
    assert response.status_code == 400, response.content
    assert parameter in response.json()["error"]["fields"]


@pytest.mark.parametrize(("method", "path", "operation"), WITH_BODY)
def test_every_body__hostile_json__400(
    admin_api: APIClient,
    client_token: str,
    world: dict[str, str],
    method: str,
    path: str,
    operation: dict[str, Any],
) -> None:
    if path.startswith("/ofrep/"):
        admin_api.credentials(HTTP_AUTHORIZATION=f"Bearer {client_token}")
    answers = {
        shape: _send(admin_api, method, _path(path, world), body) for shape, body in BODIES.items()
    }
    statuses = {shape: response.status_code for shape, response in answers.items()}
    assert set(statuses.values()) == {400}, statuses


def _post(client: Client, path: str, body: str, token: str) -> Any:
    return client.post(
        path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_metrics__lone_surrogate_in_a_label__400_naming_it(admin_token: str) -> None:
    body = '{"samples": [{"metric": "requests", "value": 1, "labels": {"flag": "\\udc00"}}]}'
    response = _post(Client(), "/api/v1/metrics/", body, admin_token)
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["samples[0].labels.flag"]


def test_feedback__lone_surrogate_in_a_metadata_key__400_naming_it(client_token: str) -> None:
    body = '{"type": "bug", "text": "Broken", "metadata": {"\\udc00": "x"}}'
    response = _post(Client(), "/api/v1/feedback/", body, client_token)
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["metadata"]


def test_native_evaluate__lone_surrogate_targeting_key__400_naming_it(
    client_token: str, world: dict[str, str]
) -> None:
    body = '{"context": {"targetingKey": "\\udc00"}}'
    response = _post(Client(), "/api/v1/evaluate/", body, client_token)
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["context.targetingKey"]


@pytest.mark.parametrize("path", ["/ofrep/v1/evaluate/flags/scenes", "/ofrep/v1/evaluate/flags"])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"context": {"targetingKey": "\\udc00"}}', "INVALID_CONTEXT"),
        ('{"context": {"targetingKey": "u-1", "orgId": "\\ud83d"}}', "INVALID_CONTEXT"),
        ('{"context": {"targetingKey": "\xed\xb3\x80"}}', "PARSE_ERROR"),  # encoded surrogate
        (DEEP, "PARSE_ERROR"),
        (PAST_LIMIT, "PARSE_ERROR"),
    ],
)
def test_ofrep__hostile_context__400_in_ofreps_shape(
    client_token: str, world: dict[str, str], path: str, body: str, code: str
) -> None:
    raw = body.encode("latin-1") if "\xed" in body else body.encode()
    response = Client().post(
        path, raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {client_token}"
    )
    assert response.status_code == 400, response.content
    assert response.json()["errorCode"] == code
    assert response.json()["errorDetails"]


def test_ofrep__surrogate_pair__evaluates_like_the_character(
    client_token: str, world: dict[str, str]
) -> None:
    """A whole emoji, escaped as a pair, is text: the same answer as the character sent as is."""
    escaped = '{"context": {"targetingKey": "\\ud83d\\ude00"}}'
    plain = json.dumps({"context": {"targetingKey": "\U0001f600"}}, ensure_ascii=False)
    answers = [
        _post(Client(), "/ofrep/v1/evaluate/flags/scenes", body, client_token)
        for body in (escaped, plain)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["variant"] == answers[1].json()["variant"]


def test_ofrep__nul_key__404_flag_not_found(client_token: str) -> None:
    response = _post(Client(), f"/ofrep/v1/evaluate/flags/{NUL}", "{}", client_token)
    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"


def _routes(patterns: list[URLPattern | URLResolver] | None = None, prefix: str = "") -> list[str]:
    """Every route of the site with a parameter, its parameters written as NUL characters."""
    routes = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        text = prefix + str(entry.pattern).lstrip("^").rstrip("$").replace("\\Z", "")
        if isinstance(entry, URLResolver):
            routes += _routes(entry.url_patterns, text)
        elif "<" in text or "(?P<" in text:
            routes.append(re.sub(r"\(\?P<\w+>[^)]*\)|<[^>]+>", NUL, text))
    return sorted({"/" + route.lstrip("/") for route in routes})


PAGE_ROUTES = [route for route in _routes() if not route.startswith("/ofrep/")]  # POST only


@pytest.mark.parametrize("route", PAGE_ROUTES)
def test_pages__nul_in_every_route_parameter__404_never_500(
    client: Client, release_manager: object, route: str
) -> None:
    client.force_login(release_manager)
    response = client.get(route)
    assert response.status_code == 404, (route, response.status_code)


@pytest.mark.parametrize("path", ["/flags/", "/feedback/", "/plans/", "/why/", "/"])
def test_pages__nul_in_a_query_parameter__400(
    client: Client, release_manager: object, path: str
) -> None:
    client.force_login(release_manager)
    response = client.get(f"{path}?q={NUL}&unit={NUL}")
    assert response.status_code == 400
    assert b"No NUL character" in response.content


def test_pages__nul_in_a_flag_path__404(client: Client, release_manager: object) -> None:
    client.force_login(release_manager)
    assert client.get(f"/flags/{NUL}/").status_code == 404
    assert client.get(f"/flags/{quote('a')}{NUL}/evaluate/").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        {"context": '{"targetingKey": "\\udc00"}'},
        {"context": DEEP},
    ],
)
def test_dashboard_tester__hostile_context__form_error_not_a_crash(
    client: Client, release_manager: object, world: dict[str, str], query: dict[str, str]
) -> None:
    client.force_login(release_manager)
    for path in ("/flags/scenes/", "/flags/scenes/evaluate/"):
        response = client.get(path, query)
        assert response.status_code == 200
        assert b"Not usable" in response.content, response.content[-2000:]


def test_why_page__lone_surrogate_in_extra_context__form_error(
    client: Client, release_manager: object, world: dict[str, str]
) -> None:
    client.force_login(release_manager)
    response = client.get("/why/", {"unit": "u-1", "kind": "user", "extra": '{"orgId": "\\udc00"}'})
    assert response.status_code == 200
    assert b"Not usable" in response.content


@pytest.mark.parametrize("path", ["/ofrep/v1/evaluate/flags/scenes", "/ofrep/v1/evaluate/flags"])
def test_ofrep__body_over_ofrep_max_body_bytes__413_in_ofreps_shape(
    client_token: str, world: dict[str, str], settings: Any, path: str
) -> None:
    limit = settings.OFREP_MAX_BODY_BYTES
    assert limit == 64 * 1024
    head = '{"context": {"targetingKey": "u-1", "pad": "'
    fits = head + "x" * (limit - len(head) - 3) + '"}}'
    assert len(fits) == limit
    assert _post(Client(), path, fits, client_token).status_code == 200
    response = _post(Client(), path, fits.replace('"pad": "', '"pad": "x'), client_token)
    assert response.status_code == 413
    assert response.json() == {
        "errorCode": "GENERAL",
        "errorDetails": f"Request bodies are limited to {limit} bytes (OFREP_MAX_BODY_BYTES).",
    }
