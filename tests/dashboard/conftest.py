from typing import Any

import pytest
from django.test import Client

from phases import services
from phases.models import RolloutPlan
from tests.phases.conftest import SYSTEM, make_user, release_flags, two_flag_release

__all__ = ["release_flags"]  # the fixture, used by name
COHORTS = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}


@pytest.fixture
def plan(release_flags: dict[str, str]) -> RolloutPlan:
    """The two-flag feature release, active in its first phase (Internal testing)."""
    definition = two_flag_release()
    definition["phases"][0]["checklist"] = ["Security review cleared"]
    plan = services.plan_create(
        name="Stripboard", definition=definition, flags=release_flags, actor=SYSTEM, cohorts=COHORTS
    )
    return services.plan_activate(plan=plan, actor=SYSTEM)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager(db: None) -> Any:
    return make_user("ann", "release_manager")


@pytest.fixture
def manager_client(manager: Any) -> Client:
    return _client(manager)


@pytest.fixture
def support(db: None) -> Any:
    return make_user("sue", "support")


@pytest.fixture
def support_client(support: Any) -> Client:
    return _client(support)


@pytest.fixture
def nobody_client(db: None) -> Client:
    return _client(make_user("nora"))
