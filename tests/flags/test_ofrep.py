import json
import threading

import pytest
import redis
from django.conf import settings
from django.db.backends.utils import CursorWrapper
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from flags import ofrep, services
from rollout_control.core.ratelimit import TokenBucket
from rollout_control.core.snapshots import store
from tests.flags.conftest import SYSTEM

pytestmark = pytest.mark.django_db

ONE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"


def _post(client: Client, path: str, body: object, token: str, **headers: str) -> object:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **headers
    )


def test_ofrep_single__cohort_member__on_targeting_match(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    response = _post(
        client, ONE + "new-checkout", {"context": {"targetingKey": "u-1"}}, client_token
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["key"], body["value"], body["variant"], body["reason"]) == (
        "new-checkout",
        True,
        "on",
        "TARGETING_MATCH",
    )
    assert body["metadata"]["cohort"] == "beta"
    assert body["metadata"]["percentage"] == 100
    assert body["metadata"]["snapshotAgeSeconds"] >= 0
    assert all(isinstance(v, str | int | float | bool) for v in body["metadata"].values())


def test_ofrep_single__split__variant_matches_bucket(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    values = set()
    for index in range(200):
        body = _post(
            client, ONE + "new-checkout", {"context": {"targetingKey": f"x-{index}"}}, client_token
        ).json()
        assert body["reason"] == "SPLIT"
        assert body["variant"] == ("on" if body["value"] else "off")
        values.add(body["value"])
    assert values == {True, False}


def test_ofrep_single__kill_switch__disabled(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    services.flag_set_kill_switch(key="new-checkout", killed=True, actor=SYSTEM, reason="incident")
    body = _post(
        client, ONE + "new-checkout", {"context": {"targetingKey": "u-1"}}, client_token
    ).json()
    assert (body["value"], body["variant"], body["reason"]) == (False, "off", "DISABLED")


def test_ofrep_single__unknown_flag__404_flag_not_found(client: Client, client_token: str) -> None:
    response = _post(client, ONE + "nope", {"context": {"targetingKey": "u"}}, client_token)
    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["errorDetails"]


def test_ofrep_single__no_targeting_key_mid_percentage__400(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    response = _post(client, ONE + "new-checkout", {"context": {}}, client_token)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"
    assert response.json()["errorDetails"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "PARSE_ERROR"),
        ("[1, 2]", "PARSE_ERROR"),
        ('{"context": [1]}', "INVALID_CONTEXT"),
        ('{"context": "u-1"}', "INVALID_CONTEXT"),
        ('{"context": {"targetingKey": {"id": 1}}}', "INVALID_CONTEXT"),
        ('{"context": {"targetingKey": 1.5}}', "INVALID_CONTEXT"),
        ('{"context": {"targetingKey": true}}', "INVALID_CONTEXT"),
    ],
)
def test_ofrep_single__bad_body__400_with_code(
    client: Client, client_token: str, checkout_flag: object, body: str, code: str
) -> None:
    response = _post(client, ONE + "new-checkout", body, client_token)
    assert response.status_code == 400
    assert response.json()["errorCode"] == code
    assert response.json()["errorDetails"]


@pytest.mark.parametrize("endpoint", [ONE + "new-checkout", BULK])
@pytest.mark.parametrize("key", [12345, None, {"id": 1}])
def test_ofrep__targeting_key_not_a_string__400_invalid_context(
    client: Client, client_token: str, checkout_flag: object, endpoint: str, key: object
) -> None:
    # OFREP's published document (and OpenFeature's SDKs) make the targeting key a string; the
    # bulk endpoint refuses the whole context rather than failing each flag (issue 9, point 1).
    response = _post(client, endpoint, {"context": {"targetingKey": key}}, client_token)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


def test_ofrep__context_null__400_invalid_context(client: Client, client_token: str) -> None:
    response = _post(client, BULK, {"context": None}, client_token)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


def test_native_evaluate__integer_targeting_key__same_as_string(
    client_api: APIClient, checkout_flag: object
) -> None:
    # Stickiness values may be integers (DESIGN); only OFREP's wire format says string.
    def outcomes(key: object) -> list[tuple]:
        body = {"context": {"targetingKey": key}}
        flags = client_api.post("/api/v1/evaluate/", body, format="json").json()["flags"]
        return [(f["key"], f["value"], f["reason"]) for f in flags]

    assert outcomes(12345) == outcomes("12345")


def test_ofrep__no_or_bad_token__401(client: Client, checkout_flag: object) -> None:
    assert (
        client.post(ONE + "new-checkout", "{}", content_type="application/json").status_code == 401
    )
    assert _post(client, ONE + "new-checkout", {}, "rc_wrong").status_code == 401
    assert _post(client, BULK, {}, "rc_wrong").status_code == 401


def test_ofrep__x_api_key__accepted(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    response = client.post(BULK, "{}", content_type="application/json", HTTP_X_API_KEY=client_token)
    assert response.status_code == 200


def test_ofrep_bulk__etag_then_304_until_config_changes(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    context = {"context": {"targetingKey": "u-1", "plan": "pro"}}
    first = _post(client, BULK, context, client_token)
    assert first.status_code == 200
    etag = first["ETag"]
    assert [f["key"] for f in first.json()["flags"]] == ["new-checkout"]
    again = _post(client, BULK, context, client_token, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag
    # Same context with keys in another order is the same ETag.
    reordered = _post(
        client,
        BULK,
        '{"context": {"plan": "pro", "targetingKey": "u-1"}}',
        client_token,
        HTTP_IF_NONE_MATCH=etag,
    )
    assert reordered.status_code == 304
    other = _post(
        client, BULK, {"context": {"targetingKey": "u-2"}}, client_token, HTTP_IF_NONE_MATCH=etag
    )
    assert other.status_code == 200
    services.flag_set_percentage(key="new-checkout", percentage=50, actor=SYSTEM)
    changed = _post(client, BULK, context, client_token, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_ofrep_bulk__per_flag_error_in_list(
    client: Client, client_token: str, checkout_flag: object
) -> None:
    services.flag_create(key="always", actor=SYSTEM, forced_on=True)
    flags = _post(client, BULK, {"context": {}}, client_token).json()["flags"]
    by_key = {f["key"]: f for f in flags}
    assert by_key["always"]["value"] is True and by_key["always"]["reason"] == "STATIC"
    assert by_key["new-checkout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert by_key["new-checkout"]["errorDetails"]


def test_ofrep_bulk__bad_context__400(client: Client, client_token: str) -> None:
    response = _post(client, BULK, '{"context": 7}', client_token)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


def test_ofrep__over_rate__429_with_retry_after_seconds(
    client: Client, client_token: str, checkout_flag: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ofrep, "_limiter", TokenBucket(rate=0.5, burst=2))
    statuses = [_post(client, BULK, {}, client_token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = _post(client, ONE + "new-checkout", {}, client_token)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1


def test_ofrep__cors_preflight_from_configured_origin(client: Client, settings: object) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = client.options(
        BULK,
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,if-none-match",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "if-none-match" in response["Access-Control-Allow-Headers"]
    other = client.options(
        BULK, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in other


def test_ofrep__1000_warm_evaluations__no_sql_in_any_thread_and_no_redis(
    client_token: str, checkout_flag: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = RequestFactory()
    body = json.dumps({"context": {"targetingKey": "u-1"}})

    def request(path: str) -> object:
        return factory.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {client_token}"
        )

    assert (
        ofrep.evaluate_one(request(ONE + "new-checkout"), "new-checkout").status_code == 200
    )  # warm up
    store.poll_seconds = 3600  # nothing may be due during the measured loop
    queries: list[str] = []
    original_execute = CursorWrapper.execute

    def counting_execute(self: CursorWrapper, sql: str, params: object = None) -> object:
        queries.append(f"{threading.current_thread().name}: {sql}")
        return original_execute(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", counting_execute)
    server = redis.Redis.from_url(settings.REDIS_URL)
    baseline_before = server.info("stats")["total_commands_processed"]
    baseline_after = server.info("stats")["total_commands_processed"]
    info_cost = baseline_after - baseline_before  # what one INFO call itself adds
    try:
        before = server.info("stats")["total_commands_processed"]
        for index in range(500):
            assert (
                ofrep.evaluate_one(request(ONE + "new-checkout"), "new-checkout").status_code == 200
            )
            assert ofrep.evaluate_bulk(request(BULK)).status_code == 200, index
        after = server.info("stats")["total_commands_processed"]
    finally:
        store.poll_seconds = 0.5
    assert queries == []
    assert after - before == info_cost


def test_waffle__flag_is_active__agrees_with_ofrep(
    client: Client, client_token: str, checkout_flag: object, release_manager: object
) -> None:
    import waffle
    from django.template import Context, Template

    services.flag_set_percentage(key="new-checkout", percentage=50, actor=SYSTEM)
    request = RequestFactory().get("/")
    request.user = release_manager
    api = _post(
        client,
        ONE + "new-checkout",
        {"context": {"targetingKey": str(release_manager.pk)}},
        client_token,
    ).json()
    assert waffle.flag_is_active(request, "new-checkout") is api["value"]
    rendered = Template(
        "{% load waffle_tags %}{% flag 'new-checkout' %}on{% else %}off{% endflag %}"
    ).render(Context({"request": request}))
    assert rendered == api["variant"]
    assert waffle.flag_is_active(request, "does-not-exist") is False


def test_schema__documents_ofrep_endpoints(client: Client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    single = schema["paths"]["/ofrep/v1/evaluate/flags/{key}"]["post"]
    assert set(single["responses"]) == {"200", "400", "401", "404", "413", "429", "503"}
    bulk = schema["paths"]["/ofrep/v1/evaluate/flags"]["post"]
    assert "304" in bulk["responses"]
    assert "OfrepBulkSuccess" in schema["components"]["schemas"]
