"""Clear errors for the first mistakes people make (issue 14, point 10): OFREP's 401 says
whether the token was missing or not recognised, a 415 says which Content-Type to send, and an
invalid choice lists the valid ones."""

import pytest
from rest_framework.test import APIClient

from flags import services as flag_services
from rollout_control.core.actors import Actor

pytestmark = pytest.mark.django_db
OFREP = "/ofrep/v1/evaluate/flags"


def test_ofrep__no_token__401_says_none_was_sent(api: APIClient) -> None:
    response = api.post(OFREP, {"context": {}}, format="json")
    assert response.status_code == 401
    details = response.json()["errorDetails"]
    assert details.startswith("No token was sent.") and "Authorization: Bearer" in details


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_ofrep__unknown_token__401_says_not_recognised(api: APIClient, header: str) -> None:
    value = "Bearer nope" if header == "HTTP_AUTHORIZATION" else "nope"
    response = api.post(OFREP, {"context": {}}, format="json", **{header: value})
    assert response.status_code == 401
    assert "not recognised" in response.json()["errorDetails"]


def test_api__form_encoded_body__415_says_send_json(admin_api: APIClient) -> None:
    # What `curl -d 'key=x'` sends without a -H 'Content-Type: application/json'.
    response = admin_api.post(
        "/api/v1/flags/", "key=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]


def test_api__invalid_choice__400_lists_valid_choices(admin_api: APIClient) -> None:
    flag_services.flag_create(key="checkout", actor=Actor.system())
    response = admin_api.patch("/api/v1/flags/checkout/", {"tier": "gold"}, format="json")
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["tier"]
    assert message == '"gold" is not a valid choice; choose one of: core, non_essential.'


def test_api__invalid_choice_among_many__400_points_at_the_schema(admin_api: APIClient) -> None:
    response = admin_api.post(
        "/api/v1/plans/", {"name": "P", "template": "x", "timezone": "Mars/Olympus"}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["template"] == [
        '"x" is not a valid choice; choose one of: feature-release, tenant-onboarding.'
    ]
    [timezone] = fields["timezone"]
    assert timezone.startswith('"Mars/Olympus" is not a valid choice; choose one of: Africa/')
    assert timezone.endswith("in all; see /api/schema/).") and len(timezone) < 400
