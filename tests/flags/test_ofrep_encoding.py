"""OFREP bodies are encoded once per evaluation outcome and reused (flags/ofrep.py)."""

import json

import pytest
from django.test import Client

from flags import services
from tests.flags.conftest import SYSTEM

pytestmark = pytest.mark.django_db

ONE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"


def _post(client: Client, path: str, token: str, context: dict) -> dict:
    response = client.post(
        path,
        json.dumps({"context": context}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def _ageless(answer: dict) -> dict:
    metadata = {k: v for k, v in answer["metadata"].items() if k != "snapshotAgeSeconds"}
    return {**answer, "metadata": metadata}


def test_ofrep__flag_changed_after_answers_were_encoded__answers_follow_the_change(
    client: Client, client_token: str
) -> None:
    services.flag_create(key="enc", actor=SYSTEM, forced_on=True)
    context = {"targetingKey": "u-1"}
    first = _post(client, ONE + "enc", client_token, context)
    again = _post(client, ONE + "enc", client_token, context)  # the reused encoding

    services.flag_update(
        key="enc", actor=SYSTEM, changes={"forced_on": False, "rollout_percentage": 0}
    )
    single = _post(client, ONE + "enc", client_token, context)
    (bulk,) = _post(client, BULK, client_token, context)["flags"]

    assert (first["value"], first["reason"], first["metadata"]["percentage"]) == (
        True, "STATIC", 100
    )  # fmt: skip
    assert (single["value"], single["reason"], single["metadata"]["percentage"]) == (
        False, "DEFAULT", 0
    )  # fmt: skip
    assert single["metadata"]["flagVersion"] == first["metadata"]["flagVersion"] + 1
    assert _ageless(again) == _ageless(first)
    assert _ageless(bulk) == _ageless(single)


def test_ofrep__answer__exact_key_order_and_age_last(client: Client, client_token: str) -> None:
    services.flag_create(key="enc", actor=SYSTEM, rollout_percentage=100)
    response = client.post(
        ONE + "enc",
        json.dumps({"context": {"targetingKey": "u-1"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {client_token}",
    )
    body = json.loads(response.content)

    assert list(body) == ["key", "value", "reason", "variant", "metadata"]
    assert list(body["metadata"])[-1] == "snapshotAgeSeconds"
    assert isinstance(body["metadata"]["snapshotAgeSeconds"], float)
    assert response["Content-Type"] == "application/json"
