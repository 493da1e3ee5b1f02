"""Clients cannot drive snapshot rebuilds: opt-ins reload only the set they change, rebuilds are
coalesced, and opt-ins are rate-limited per token and per unit (issue 14, point 3)."""

import os
from typing import Any

import pytest
from rest_framework.test import APIClient

from flags import api as flags_api
from flags import services
from flags.evaluation import evaluate
from flags.models import CohortMember
from flags.selectors import flag_snapshot
from rollout_control.core import snapshots
from rollout_control.core.actors import Actor
from rollout_control.core.ratelimit import TokenBucket
from rollout_control.core.services import config_version_bump
from rollout_control.core.snapshots import SnapshotStore, store

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture
def cohorts() -> None:
    services.cohort_create(key="big", actor=SYSTEM)
    services.cohort_members_add(key="big", units=[f"m-{n}" for n in range(3_000)], actor=SYSTEM)
    services.cohort_create(key="beta", actor=SYSTEM, opt_in=True)
    services.flag_create(
        key="f",
        actor=SYSTEM,
        cohort_rules=[
            services.CohortRuleInput("big", 100),  # type: ignore[arg-type]
            services.CohortRuleInput("beta", 100),  # type: ignore[arg-type]
        ],
    )


def test_opt_in__rebuild__unchanged_cohorts_and_sets_reused_changed_set_reloaded(
    cohorts: None,
) -> None:
    before = flag_snapshot()
    services.cohort_opt_in(key="beta", unit="u-1", actor=SYSTEM)
    store.refresh(force=True)
    after = flag_snapshot()
    assert after is not before
    assert after.cohorts["big"] is before.cohorts["big"]  # same object: its lookups are reused
    assert after.cohorts["beta"].members is before.cohorts["beta"].members
    assert after.cohorts["beta"].opt_in_members == {"u-1"}
    assert evaluate(after, "f", {"targetingKey": "u-1"}).value is True
    assert evaluate(after, "f", {"targetingKey": "m-42"}).value is True


def test_members_removed__rebuild__the_set_follows(cohorts: None) -> None:
    flag_snapshot()
    services.cohort_members_remove(key="big", units=["m-42"], actor=SYSTEM)
    store.refresh(force=True)
    assert "m-42" not in flag_snapshot().cohorts["big"].members
    assert evaluate(flag_snapshot(), "f", {"targetingKey": "m-42"}).value is False


def test_rebuilds__writes_faster_than_the_interval__one_rebuild_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    local = SnapshotStore()
    local._pid = os.getpid()  # threaded, as in a server, without starting the poller thread
    local.register("n", lambda version: built.append(version) or version)
    monkeypatch.setattr(snapshots, "MIN_REBUILD_SECONDS", 3600.0)
    local.get("n")
    for _ in range(25):  # a flood of writes, each marking this process dirty
        config_version_bump()
        local._dirty = True
        local.get("n")
        local.refresh()  # the poller's turn
    assert len(built) == 1
    local._built_at -= 3601  # the interval has passed
    assert local.get("n") == built[-1] and len(built) == 2
    local.refresh()
    assert len(built) == 2  # nothing new since


def test_opt_in__same_unit_flipped_over_and_over__429_with_retry_after_nothing_written(
    client_api: APIClient, cohorts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flags_api, "_opt_in_per_unit", TokenBucket(rate=1 / 60, burst=2))
    url = "/api/v1/cohorts/beta/opt-in/"
    assert client_api.post(url, {"unit": "u-5"}, format="json").status_code == 200
    assert client_api.delete(url, {"unit": "u-5"}, format="json").status_code == 200
    refused = client_api.post(url, {"unit": "u-5"}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert not CohortMember.objects.filter(unit="u-5").exists()
    assert client_api.post(url, {"unit": "u-6"}, format="json").status_code == 200


def test_opt_in__one_token_many_units__429_past_the_token_limit(
    client_api: APIClient, cohorts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flags_api, "_opt_in_per_token", TokenBucket(rate=0.01, burst=3))
    url = "/api/v1/cohorts/beta/opt-in/"
    statuses: list[Any] = [
        client_api.post(url, {"unit": f"u-{n}"}, format="json").status_code for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    assert CohortMember.objects.filter(kind="opt_in").count() == 3
