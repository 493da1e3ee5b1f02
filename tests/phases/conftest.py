import copy
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from flags import services as flag_services
from phases.seed_templates import FEATURE_RELEASE
from rollout_control.core.actors import Actor

SYSTEM = Actor.system("test")


def verify_safe_point(plan: Any, now: Any) -> Any:
    """Records the plan's flags as they are now as a verified safe point, as a full window of
    passing guardrail checks would (tests/phases/test_rollback.py checks that path itself)."""
    from phases.models import Checkpoint
    from phases.services.plans import plan_config

    return Checkpoint.objects.create(
        plan=plan,
        kind=Checkpoint.Kind.OBSERVED,
        config=plan_config(plan),
        created_at=now,
        passing_since=now,
        verified_at=now,
    )


COHORTS = ["internal", "external_beta", "open_beta", "power_users", "paying"]


def two_flag_release(*, criteria: bool = True) -> dict[str, Any]:
    """The feature-release template with two flags (basic and reporting) and, to keep gate
    arithmetic visible, only its error-rate criteria."""
    definition = copy.deepcopy(FEATURE_RELEASE)
    definition["flags"] = ["basic", "reporting"]
    for phase in definition["phases"]:
        phase["targets"] = [t for t in phase["targets"] if t["flag"] != "drag_drop"]
        phase["criteria"] = (
            [c for c in phase["criteria"] if c["metric"] == "error_rate"] if criteria else []
        )
        phase["checklist"] = []
    return definition


@pytest.fixture
def release_flags(db: None) -> dict[str, str]:
    for key in COHORTS:
        flag_services.cohort_create(
            key=key, name=key.replace("_", " "), actor=SYSTEM, contacts=[f"{key}@example.com"]
        )
    flag_services.cohort_members_add(key="internal", units=["dev-1", "dev-2"], actor=SYSTEM)
    flag_services.cohort_update(key="open_beta", changes={"opt_in": True}, actor=SYSTEM)
    flag_services.flag_create(key="scenes", actor=SYSTEM)
    flag_services.flag_create(key="reports", actor=SYSTEM)
    return {"basic": "scenes", "reporting": "reports"}


def make_user(username: str, *roles: str) -> Any:
    user = get_user_model().objects.create_user(username=username, password="x")
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def managers(db: None) -> tuple[Any, Any]:
    return make_user("rm-ann", "release_manager"), make_user("rm-bob", "release_manager")


@pytest.fixture
def supporter(db: None) -> Any:
    return make_user("sue", "support")
