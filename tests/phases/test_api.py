from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from phases.models import Decision, RolloutPlan
from rollout_control.core.models import AuditEntry

pytestmark = pytest.mark.django_db
COHORT_MAP = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}


@pytest.fixture
def drag_flag(release_flags: dict) -> dict:
    from flags import services as flag_services
    from tests.phases.conftest import SYSTEM

    flag_services.flag_create(key="dragdrop", actor=SYSTEM)
    return {**release_flags, "drag_drop": "dragdrop"}


def _create(client: APIClient, flags: dict, **extra: object) -> dict:
    body = {
        "template": "feature-release",
        "name": "Stripboard",
        "flags": flags,
        "cohorts": COHORT_MAP,
    } | extra
    response = client.post("/api/v1/plans/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_plan_create__from_template__draft_with_five_phases(
    admin_api: APIClient, drag_flag: dict
) -> None:
    plan = _create(admin_api, drag_flag)
    assert plan["status"] == "draft"
    assert [p["name"] for p in plan["phases"]] == [
        "Internal testing",
        "Closed beta",
        "Open beta",
        "Limited production",
        "Full launch",
    ]
    open_beta = plan["phases"][2]
    assert {
        "flag": "reports",
        "cohort": "open_beta",
        "start": 10,
        "step": 10,
        "target": 100,
    } in open_beta["targets"]
    closed = plan["phases"][1]
    assert {c["metric"] for c in closed["criteria"]} == {
        "feedback_open_critical",
        "error_rate",
        "feedback_satisfaction",
        "adoption",
    }
    assert closed["required_signoffs"] == ["release_manager", "support"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"flags": {"basic": "scenes", "reporting": "reports"}}, "flags.drag_drop"),
        ({"cohorts": {**COHORT_MAP, "paying": "nope"}}, "cohorts.paying"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"step_hour": 24}, "step_hour"),
        ({"template": "nope"}, "template"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_plan_create__bad_input__400_nothing_created(
    admin_api: APIClient, drag_flag: dict, change: dict, field: str
) -> None:
    body = {
        "template": "feature-release",
        "name": "X",
        "flags": drag_flag,
        "cohorts": COHORT_MAP,
    } | change
    response = admin_api.post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert RolloutPlan.objects.count() == 0


def test_plan_actions__activate_pause_resume_preview(admin_api: APIClient, drag_flag: dict) -> None:
    plan_id = _create(admin_api, drag_flag)["id"]
    with time_machine.travel(datetime(2026, 3, 2, 10, tzinfo=UTC), tick=False):
        assert admin_api.post(f"/api/v1/plans/{plan_id}/activate/").json()["status"] == "active"
        assert admin_api.post(f"/api/v1/plans/{plan_id}/activate/").status_code == 409
        preview = admin_api.get(f"/api/v1/plans/{plan_id}/preview/").json()
    assert preview["phase"] == "Internal testing"
    assert {
        "flag": "scenes",
        "cohort": "internal",
        "before": 100,
        "after": 100,
        "target": 100,
        "units_added": 0,
    } in preview["targets"]
    losers = {row["flag"]: row for row in preview["rollback"]}
    # No safe point verified yet: back to the flags as they were before the first phase.
    assert losers["scenes"]["restores_to"] == "the flags as they were before Internal testing began"
    assert losers["scenes"]["before"]["cohort_rules"] == [{"cohort": "internal", "percentage": 100}]
    assert losers["scenes"]["after"]["cohort_rules"] == [{"cohort": "internal", "percentage": 0}]
    assert losers["scenes"]["known_units_losing"] == ["dev-1", "dev-2"]
    assert losers["scenes"]["users_losing_count"] == 2
    paused = admin_api.post(
        f"/api/v1/plans/{plan_id}/pause/", {"reason": "checking"}, format="json"
    ).json()
    assert (paused["status"], paused["status_reason"]) == ("paused", "checking")
    assert admin_api.post(f"/api/v1/plans/{plan_id}/resume/").json()["status"] == "active"
    actions = list(
        AuditEntry.objects.filter(object_type="phases.rolloutplan").values_list("action", flat=True)
    )
    assert sorted(actions) == ["plan.activate", "plan.create", "plan.pause", "plan.resume"]


def test_decide__token_without_user__403(drag_flag: dict) -> None:
    from rollout_control.core.actors import Actor
    from rollout_control.core.services import api_token_create

    _, raw = api_token_create(name="robot", scope="admin", actor=Actor.system())
    robot = APIClient()
    robot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    plan_id = _create(robot, drag_flag)["id"]
    robot.post(f"/api/v1/plans/{plan_id}/activate/")
    response = robot.post(
        f"/api/v1/plans/{plan_id}/decide/", {"decision": "no_go", "comment": "x"}, format="json"
    )
    assert response.status_code == 403
    assert Decision.objects.count() == 0


def test_decide__support_user__403_but_may_sign_off(
    drag_flag: dict, admin_api: APIClient, supporter: object
) -> None:
    plan_id = _create(admin_api, drag_flag)["id"]
    admin_api.post(f"/api/v1/plans/{plan_id}/activate/")
    support = APIClient()
    support.force_login(supporter)
    assert (
        support.post(
            f"/api/v1/plans/{plan_id}/decide/", {"decision": "go"}, format="json"
        ).status_code
        == 403
    )
    assert support.post(f"/api/v1/plans/{plan_id}/sign-off/", {}, format="json").status_code == 201
    again = support.post(f"/api/v1/plans/{plan_id}/sign-off/", {}, format="json")
    assert again.status_code == 409
    review = support.post(f"/api/v1/plans/{plan_id}/run-gate/").json()
    verdicts = {r["metric"]: r["verdict"] for r in review["results"]}
    assert verdicts["error_rate"] == "insufficient_data"  # no traffic pushed
    assert set(verdicts) == {"error_rate", "feedback_open_critical"}


def test_decide__go_over_failing_gate_needs_override(
    drag_flag: dict, admin_api: APIClient, managers: tuple
) -> None:
    ann, bob = managers
    plan_id = _create(admin_api, drag_flag)["id"]
    admin_api.post(f"/api/v1/plans/{plan_id}/activate/")
    person = APIClient()
    person.force_login(bob)
    person.post(f"/api/v1/plans/{plan_id}/sign-off/", {}, format="json")
    person.force_login(ann)
    refused = person.post(f"/api/v1/plans/{plan_id}/decide/", {"decision": "go"}, format="json")
    assert refused.status_code == 409
    assert "override" in refused.json()["error"]["message"]
    body = {
        "decision": "go",
        "override_reason": "internal only, data too thin",
        "comment": "ship to beta",
    }
    decided = person.post(f"/api/v1/plans/{plan_id}/decide/", body, format="json")
    assert decided.status_code == 200, decided.json()
    assert admin_api.get(f"/api/v1/plans/{plan_id}/").json()["phases"][1]["status"] == "active"


def test_rollback__manual_off__kill_switch_on_every_flag(
    drag_flag: dict, admin_api: APIClient
) -> None:
    plan_id = _create(admin_api, drag_flag)["id"]
    admin_api.post(f"/api/v1/plans/{plan_id}/activate/")
    incident = admin_api.post(
        f"/api/v1/plans/{plan_id}/rollback/",
        {"reason": "bad data", "rollback_to": "off"},
        format="json",
    ).json()
    assert incident["trigger"] == "manual"
    assert incident["restored_to"]["kind"] == "off"
    assert {step["flag"] for step in incident["steps"] if step["action"] == "disabled"} == {
        "scenes",
        "dragdrop",
        "reports",
    }
    assert admin_api.get("/api/v1/flags/scenes/").json()["kill_switch"] is True
    assert (
        admin_api.post(
            f"/api/v1/plans/{plan_id}/rollback/", {"reason": "again"}, format="json"
        ).json()["id"]
        == incident["id"]
    )
    restarted = admin_api.post(f"/api/v1/plans/{plan_id}/restart-phase/").json()
    assert restarted["status"] == "active"


def test_plans__client_token__403(client_api: APIClient) -> None:
    assert client_api.get("/api/v1/plans/").status_code == 403


def test_freeze_windows__overlap_400_and_remove(admin_api: APIClient, drag_flag: dict) -> None:
    plan_id = _create(admin_api, drag_flag)["id"]
    url = f"/api/v1/plans/{plan_id}/freeze-windows/"
    first = {
        "starts_at": "2026-12-20T00:00:00Z",
        "ends_at": "2027-01-03T00:00:00Z",
        "reason": "holidays",
    }
    created = admin_api.post(url, first, format="json")
    assert created.status_code == 201, created.json()
    overlapping = {"starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-05T00:00:00Z"}
    response = admin_api.post(url, overlapping, format="json")
    assert response.status_code == 400
    assert "starts_at" in response.json()["error"]["fields"]
    backwards = {"starts_at": "2027-02-02T00:00:00Z", "ends_at": "2027-02-01T00:00:00Z"}
    assert "ends_at" in admin_api.post(url, backwards, format="json").json()["error"]["fields"]
    assert len(admin_api.get(url).json()) == 1
    assert admin_api.delete(f"{url}{created.json()['id']}/").status_code == 204
    assert admin_api.get(url).json() == []


@pytest.mark.parametrize(
    ("target", "field"),
    [
        ({"flag": "f", "start": 10, "step": 120, "target": 100}, "phases[0].targets[0].step"),
        ({"flag": "f", "start": 50, "step": 10, "target": 40}, "phases[0].targets[0].target"),
        ({"flag": "f", "start": -1, "step": 10, "target": 40}, "phases[0].targets[0].start"),
        ({"flag": "f", "start": 10.123, "step": 10, "target": 40}, "phases[0].targets[0].start"),
    ],
)
def test_plan_create__bad_targets__400_nothing_created(
    release_flags: dict, target: dict, field: str
) -> None:
    from phases import services
    from phases.exceptions import InvalidPlan
    from tests.phases.conftest import SYSTEM

    definition = {"flags": ["f"], "phases": [{"name": "P", "targets": [target]}]}
    with pytest.raises(InvalidPlan) as error:
        services.plan_create(name="x", definition=definition, flags={"f": "scenes"}, actor=SYSTEM)
    assert error.value.field == field
    assert RolloutPlan.objects.count() == 0


def test_decide__plan_without_active_phase__409_nothing_recorded(
    admin_api: APIClient, drag_flag: dict, managers: tuple
) -> None:
    plan_id = _create(admin_api, drag_flag)["id"]  # a draft: no phase is active
    person = APIClient()
    person.force_login(managers[0])
    response = person.post(
        f"/api/v1/plans/{plan_id}/decide/", {"decision": "no_go", "comment": "x"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "phase_not_active"
    assert Decision.objects.count() == 0


def test_plan_list__status_filter__unknown_status_400(
    admin_api: APIClient, drag_flag: dict
) -> None:
    _create(admin_api, drag_flag)
    assert admin_api.get("/api/v1/plans/?status=draft").json()["count"] == 1
    assert admin_api.get("/api/v1/plans/?status=active").json()["count"] == 0
    response = admin_api.get("/api/v1/plans/?status=sleeping")
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]
