"""Lost updates (issue 9, point 9): two edits of the same flag or plan that start from the same
version: one wins, the other is told (409, naming `version`) and changes nothing. `If-Match`
still answers a stale version with 412 (issue 3).

The concurrent tests make the race real rather than hoped for: the first edit is held inside its
transaction, just after it has locked the row, until PostgreSQL shows the second edit waiting for
that lock; only then does the first commit. An edit that read the row without locking it would
not wait, both would answer 200, and the test would fail.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import Flag
from phases import services as plan_services
from phases.models import RolloutPlan
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM, release_flags, two_flag_release
from tests.races import LOCK_WAIT_TIMEOUT, HoldAfterLock, waiting_for_lock

__all__ = ["release_flags"]  # the fixture, used by name

FLAG = "/api/v1/flags/checkout/"


@pytest.fixture
def flag(db: None) -> Flag:
    return flag_services.flag_create(key="checkout", actor=Actor.system(), rollout_percentage=10)


@pytest.fixture
def plan(release_flags: dict[str, str]) -> RolloutPlan:
    return plan_services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        cohorts={c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]},
        actor=SYSTEM,
    )


def _audit_rows(action: str) -> int:
    return AuditEntry.objects.filter(action=action).count()


# Flags, one edit after the other -----------------------------------------------------------------


@pytest.mark.django_db
def test_flag_patch__body_version_current__applies_and_bumps(
    admin_api: APIClient, flag: Flag
) -> None:
    response = admin_api.patch(FLAG, {"rollout_percentage": 20, "version": 1}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["rollout_percentage"], response.json()["version"]) == (20, 2)
    assert response["ETag"] == '"2"'


@pytest.mark.django_db
def test_flag_patch__second_edit_from_same_version__409_naming_version_nothing_changed(
    admin_api: APIClient, flag: Flag
) -> None:
    first = admin_api.patch(FLAG, {"rollout_percentage": 20, "version": 1}, format="json")
    assert first.status_code == 200
    audited = _audit_rows("flag.update")
    second = admin_api.patch(FLAG, {"rollout_percentage": 50, "version": 1}, format="json")
    assert second.status_code == 409, second.json()
    error = second.json()["error"]
    assert error["code"] == "version_conflict"
    assert "version" in error["fields"] and error["message"].startswith("version")
    flag.refresh_from_db()
    assert (flag.basis_points, flag.version) == (2000, 2)
    assert _audit_rows("flag.update") == audited


@pytest.mark.django_db
def test_flag_patch__stale_if_match_and_body_version__412_first(
    admin_api: APIClient, flag: Flag
) -> None:
    admin_api.patch(FLAG, {"rollout_percentage": 20}, format="json")
    response = admin_api.patch(
        FLAG, {"rollout_percentage": 50, "version": 1}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "version_mismatch"


@pytest.mark.django_db
@pytest.mark.parametrize("version", [0, "1", True, None])
def test_flag_patch__version_not_a_positive_integer__400_naming_version(
    admin_api: APIClient, flag: Flag, version: object
) -> None:
    response = admin_api.patch(FLAG, {"description": "x", "version": version}, format="json")
    assert response.status_code == 400
    assert "version" in response.json()["error"]["fields"]
    flag.refresh_from_db()
    assert (flag.description, flag.version) == ("", 1)


# Cohorts, one edit after the other ---------------------------------------------------------------

COHORT = "/api/v1/cohorts/beta/"


@pytest.fixture
def cohort(db: None) -> object:
    return flag_services.cohort_create(key="beta", name="Beta", actor=SYSTEM)


@pytest.mark.django_db
def test_cohort_patch__second_edit_from_same_version__409_nothing_changed(
    admin_api: APIClient, cohort: object
) -> None:
    first = admin_api.patch(COHORT, {"name": "Beta testers", "version": 1}, format="json")
    assert first.status_code == 200, first.json()
    assert (first.json()["version"], first["ETag"]) == (2, '"2"')
    audited = _audit_rows("cohort.update")
    second = admin_api.patch(COHORT, {"name": "Early birds", "version": 1}, format="json")
    assert second.status_code == 409, second.json()
    assert second.json()["error"]["code"] == "version_conflict"
    assert "version" in second.json()["error"]["fields"]
    assert admin_api.get(COHORT).json()["name"] == "Beta testers"
    assert _audit_rows("cohort.update") == audited


@pytest.mark.django_db
def test_cohort_patch__stale_if_match__412_nothing_changed(
    admin_api: APIClient, cohort: object
) -> None:
    admin_api.patch(COHORT, {"opt_in": True}, format="json")
    response = admin_api.patch(COHORT, {"opt_in": False}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "version_mismatch"
    assert admin_api.get(COHORT).json()["opt_in"] is True


@pytest.mark.django_db
def test_cohort_create__version_in_body__400_naming_version(admin_api: APIClient) -> None:
    response = admin_api.post(
        "/api/v1/cohorts/", {"key": "new", "name": "New", "version": 3}, format="json"
    )
    assert response.status_code == 400
    assert "version" in response.json()["error"]["fields"]


# Plans, one edit after the other -----------------------------------------------------------------


@pytest.mark.django_db
def test_plan_patch__settings__changed_audited_version_bumped(
    admin_api: APIClient, plan: RolloutPlan
) -> None:
    body = {
        "name": "Stripboard v2",
        "description": "Scheduling by strips",
        "timezone": "Europe/London",
        "step_hour": 10,
        "allowed_weekdays": [4, 0, 2, 0],
        "reason": "team moved",
        "version": 1,
    }
    response = admin_api.patch(f"/api/v1/plans/{plan.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["name"], data["timezone"], data["step_hour"]) == (
        "Stripboard v2",
        "Europe/London",
        10,
    )
    assert (data["allowed_weekdays"], data["version"]) == ([0, 2, 4], 2)
    assert response["ETag"] == '"2"'
    entry = AuditEntry.objects.get(action="plan.update")
    assert (entry.actor_type, entry.reason) == ("token", "team moved")
    assert entry.before["name"] == "Stripboard" and entry.after["name"] == "Stripboard v2"
    assert (entry.before["step_hour"], entry.after["step_hour"]) == (9, 10)
    assert entry.after["description"] == "Scheduling by strips"


@pytest.mark.django_db
def test_plan_patch__nothing_changes__no_write(admin_api: APIClient, plan: RolloutPlan) -> None:
    response = admin_api.patch(f"/api/v1/plans/{plan.pk}/", {"name": plan.name}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert _audit_rows("plan.update") == 0


@pytest.mark.django_db
def test_plan_patch__second_edit_from_same_version__409_naming_version_nothing_changed(
    admin_api: APIClient, plan: RolloutPlan
) -> None:
    url = f"/api/v1/plans/{plan.pk}/"
    assert admin_api.patch(url, {"step_hour": 7, "version": 1}, format="json").status_code == 200
    second = admin_api.patch(url, {"step_hour": 11, "version": 1}, format="json")
    assert second.status_code == 409, second.json()
    assert second.json()["error"]["code"] == "version_conflict"
    assert "version" in second.json()["error"]["fields"]
    plan.refresh_from_db()
    assert (plan.step_hour, plan.version) == (7, 2)
    assert _audit_rows("plan.update") == 1


@pytest.mark.django_db
def test_plan_patch__stale_if_match__412_nothing_changed(
    admin_api: APIClient, plan: RolloutPlan
) -> None:
    url = f"/api/v1/plans/{plan.pk}/"
    assert (
        admin_api.patch(url, {"step_hour": 7}, format="json", HTTP_IF_MATCH='"1"').status_code
        == 200
    )
    response = admin_api.patch(url, {"step_hour": 11}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "version_mismatch"
    plan.refresh_from_db()
    assert plan.step_hour == 7


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"step_hour": 24}, "step_hour"),
        ({"allowed_weekdays": []}, "allowed_weekdays"),
        ({"allowed_weekdays": [7]}, "allowed_weekdays[0]"),
        ({"name": ""}, "name"),
        ({"status": "active"}, "status"),
        ({"step_hour": "10"}, "step_hour"),
    ],
)
def test_plan_patch__bad_input__400_naming_field_nothing_written(
    admin_api: APIClient, plan: RolloutPlan, body: dict[str, Any], field: str
) -> None:
    response = admin_api.patch(f"/api/v1/plans/{plan.pk}/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    plan.refresh_from_db()
    assert plan.version == 1
    assert _audit_rows("plan.update") == 0


@pytest.mark.django_db
def test_plan_patch__completed_plan__409(admin_api: APIClient, plan: RolloutPlan) -> None:
    plan_services.plan_activate(plan=plan, actor=SYSTEM)
    plan_services.plan_complete(plan=plan, actor=SYSTEM, reason="done")
    response = admin_api.patch(f"/api/v1/plans/{plan.pk}/", {"step_hour": 3}, format="json")
    assert response.status_code == 409


@pytest.mark.django_db
def test_plan_patch__support_staff__403(
    api: APIClient, plan: RolloutPlan, support_user: Any
) -> None:
    api.force_login(support_user)
    response = api.patch(f"/api/v1/plans/{plan.pk}/", {"step_hour": 3}, format="json")
    assert response.status_code == 403
    assert api.get(f"/api/v1/plans/{plan.pk}/").status_code == 200


# Two edits at once ------------------------------------------------------------------------------


def _race(token: str, url: str, first: dict[str, Any], second: dict[str, Any]) -> list[int]:
    """Sends `first` and, while it holds the row lock, `second`: their statuses, in that order."""
    hold = HoldAfterLock()
    statuses: dict[str, int] = {}

    def send(name: str, body: dict[str, Any], wrapper: HoldAfterLock | None) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            if wrapper is None:
                statuses[name] = client.patch(url, body, format="json").status_code
            else:
                with connections["default"].execute_wrapper(wrapper):
                    statuses[name] = client.patch(url, body, format="json").status_code
        finally:
            connections.close_all()

    holder = threading.Thread(target=send, args=("first", first, hold))
    holder.start()
    assert hold.locked.wait(LOCK_WAIT_TIMEOUT), "the first edit never locked the row"
    waiter = threading.Thread(target=send, args=("second", second, None))
    waiter.start()
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT
    while not waiting_for_lock() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling PostgreSQL for the waiter, not waiting for time to pass
    hold.release.set()
    holder.join(LOCK_WAIT_TIMEOUT)
    waiter.join(LOCK_WAIT_TIMEOUT)
    return [statuses.get("first", 0), statuses.get("second", 0)]


@pytest.fixture
def _no_stray_connections() -> Iterator[None]:
    yield
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_flag_patch__two_edits_from_one_version_at_once__one_200_one_409_winner_kept(
    admin_token: str, flag: Flag, _no_stray_connections: None
) -> None:
    statuses = _race(
        admin_token,
        FLAG,
        {"rollout_percentage": 20, "version": 1},
        {"rollout_percentage": 50, "version": 1},
    )
    assert statuses == [200, 409]
    flag.refresh_from_db()
    assert (flag.basis_points, flag.version) == (2000, 2)
    assert _audit_rows("flag.update") == 1


@pytest.mark.django_db(transaction=True)
def test_plan_patch__two_edits_from_one_version_at_once__one_200_one_409_winner_kept(
    admin_token: str, plan: RolloutPlan, _no_stray_connections: None
) -> None:
    statuses = _race(
        admin_token,
        f"/api/v1/plans/{plan.pk}/",
        {"step_hour": 7, "version": 1},
        {"step_hour": 11, "timezone": "Asia/Tokyo", "version": 1},
    )
    assert statuses == [200, 409]
    plan.refresh_from_db()
    assert (plan.step_hour, plan.timezone, plan.version) == (7, "UTC", 2)
    assert _audit_rows("plan.update") == 1
