"""A guardrail or gate criterion that cannot be computed is recorded as `error` with its reason
and never stops the others; no page answers 500 because of a stored value (issue 13)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from flags import services as flag_services
from monitoring import providers
from monitoring.models import MetricDefinition, MetricSample
from monitoring.providers import MetricResult
from monitoring.services import samples_ingest
from phases import services
from phases.exceptions import GateFailing
from phases.models import Guardrail, GuardrailCheck, Incident, RolloutPlan
from tests.phases.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, after the 9:00 step hour
HUGE = 1e308


class Flaky:
    """A metric source an app might register (a remote service, say): it answers `value`, or
    raises while `broken` is set."""

    def __init__(self) -> None:
        self.broken = True
        self.value = 1.0
        self.samples = 1

    def evaluate(
        self, definition: MetricDefinition, *, start: datetime, end: datetime, filters: dict
    ) -> MetricResult:
        if self.broken:
            raise RuntimeError("upstream timed out")
        return MetricResult(value=self.value, samples=self.samples, status="ok")


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    source = Flaky()
    providers.register_provider("flaky", source)
    MetricDefinition.objects.create(name="flaky_metric", source="flaky", aggregation="value")
    yield source
    providers._providers.pop("flaky")


@pytest.fixture
def overflowing(settings: Any) -> None:
    """Stored 1e308 rows with the clamp set out of the way: SUM really overflows in PostgreSQL
    ("value out of range: overflow"), a query failing inside the check's transaction."""
    settings.METRICS_MAX_ABS_VALUE = 10**308
    MetricDefinition.objects.create(name="big_sum", aggregation="sum", metric="big")
    _store_huge("big")


def _store_huge(metric: str, n: int = 3) -> None:
    at = datetime.now(UTC) - timedelta(seconds=30)
    MetricSample.objects.bulk_create(
        MetricSample(metric=metric, value=HUGE, recorded_at=at, flag="checkout") for _ in range(n)
    )


def _guardrail(name: str, metric: str, action: str, **extra: Any) -> dict[str, Any]:
    guardrail = {
        "name": name,
        "metric": metric,
        "comparator": "gt",
        "threshold": 0.02 if metric == "error_rate" else 0,
        "window": "5m",
        "failures_to_act": 1,
        "action": action,
    }
    if action == "rollback":
        guardrail["trigger"] = "error_rate_spike"
    return guardrail | extra


def _plan(guardrails: list[dict[str, Any]], criteria: list[dict] | None = None) -> RolloutPlan:
    flag_services.flag_create(key="checkout", actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {
                "name": "Open beta",
                "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}],
                "criteria": criteria or [],
            }
        ],
        "guardrails": guardrails,
    }
    plan = services.plan_create(
        name="Checkout", definition=definition, flags={"f": "checkout"}, actor=SYSTEM
    )
    return services.plan_activate(plan=plan, actor=SYSTEM, now=datetime.now(UTC))


def _traffic(errors: float, requests: float = 50, n: int = 25) -> None:
    labels = {"flag": "checkout"}
    samples_ingest(
        items=[{"metric": "requests", "value": requests, "labels": labels} for _ in range(n)]
        + [{"metric": "errors", "value": errors, "labels": labels}]
    )


def _latest(name: str) -> GuardrailCheck:
    return GuardrailCheck.objects.filter(guardrail__name=name).order_by("-minute").first()


def test_query_overflows__recorded_error__rollback_guardrail_next_to_it_still_rolls_back(
    overflowing: None,
) -> None:
    with time_machine.travel(START, tick=False):
        plan = _plan(
            [
                _guardrail("Broken sum", "big_sum", "rollback"),  # checked first
                _guardrail("Error rate spike", "error_rate", "rollback"),
            ]
        )
        _store_huge("big")
        _traffic(errors=100)  # 8 %
        services.check_guardrails(now=datetime.now(UTC))
    broken = _latest("Broken sum")
    assert broken.verdict == "error"
    assert "out of range" in broken.detail
    assert Guardrail.objects.get(name="Broken sum").last_error == broken.detail
    assert (_latest("Error rate spike").verdict, _latest("Error rate spike").acted) == (
        "fail",
        "rollback",
    )
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    assert Incident.objects.get().trigger == "error_rate_spike"


def test_provider_raises__recorded_error__pause_guardrail_next_to_it_still_pauses(
    flaky: Flaky,
) -> None:
    with time_machine.travel(START, tick=False):
        plan = _plan(
            [
                _guardrail("Remote check", "flaky_metric", "pause"),
                _guardrail("Errors", "error_rate", "pause"),
            ]
        )
        _traffic(errors=100)
        result = services.check_guardrails(now=datetime.now(UTC))
    assert result["checked"] == 2
    remote = Guardrail.objects.get(name="Remote check")
    assert _latest("Remote check").verdict == "error"
    assert _latest("Remote check").detail == "RuntimeError: upstream timed out"
    assert (remote.last_error, remote.last_verdict, remote.consecutive_failures) == (
        "RuntimeError: upstream timed out",
        "",
        0,
    )
    plan.refresh_from_db()
    assert plan.status == "paused"


def test_error__neither_counts_nor_resets_and_clears_when_computed_again(flaky: Flaky) -> None:
    with time_machine.travel(START, tick=False) as clock:
        _plan([_guardrail("Remote", "flaky_metric", "rollback", failures_to_act=3)])
        verdicts = []
        for broken in [False, False, True, False]:
            flaky.broken = broken
            clock.shift(timedelta(minutes=1))
            services.check_guardrails(now=datetime.now(UTC))
            guardrail = Guardrail.objects.get()
            verdicts.append((_latest("Remote").verdict, guardrail.consecutive_failures))
            if broken:
                # The latest decisive check still failed: the ramp stays held.
                assert guardrail.last_verdict == "fail"
                assert guardrail.last_error == "RuntimeError: upstream timed out"
    assert verdicts == [("fail", 1), ("fail", 2), ("error", 2), ("fail", 3)]
    assert Guardrail.objects.get().last_error == ""
    assert RolloutPlan.objects.get().status == "rolled_back"


def test_check_crashes_past_the_query__recorded_error__others_still_checked(
    flaky: Flaky,
) -> None:
    # A buggy provider answers a negative sample count: storing the check itself fails
    # (PositiveIntegerField), after the query, rolling back that guardrail's transaction.
    flaky.broken, flaky.samples = False, -1
    with time_machine.travel(START, tick=False):
        _plan(
            [
                _guardrail("Buggy", "flaky_metric", "alert"),
                _guardrail("Errors", "error_rate", "pause"),
            ]
        )
        _traffic(errors=100)
        services.check_guardrails(now=datetime.now(UTC))
    buggy = _latest("Buggy")
    assert buggy.verdict == "error"
    assert buggy.detail.startswith("IntegrityError")
    assert Guardrail.objects.get(name="Buggy").last_error == buggy.detail
    assert RolloutPlan.objects.get().status == "paused"


def test_gate__criterion_cannot_be_computed__error_in_review_others_computed_no_pass(
    flaky: Flaky, managers: tuple
) -> None:
    criteria = [
        {"description": "Remote", "metric": "flaky_metric", "comparator": "lt", "threshold": 5},
        {"description": "Errors", "metric": "error_rate", "comparator": "lt", "threshold": 0.5},
    ]
    with time_machine.travel(START, tick=False):
        plan = _plan([], criteria)
        _traffic(errors=1)
        phase = plan.phases.get()
        review = services.evaluate_gate(phase=phase, actor=SYSTEM)
        verdicts = [(r["description"], r["verdict"], r["detail"]) for r in review.results]
        assert verdicts == [
            ("Remote", "error", "RuntimeError: upstream timed out"),
            ("Errors", "pass", ""),
        ]
        assert not review.passed
        with pytest.raises(GateFailing, match="Remote: error"):
            services.decide(phase=phase, kind="go", user=managers[0])
        flaky.broken = False
        assert services.evaluate_gate(phase=phase, actor=SYSTEM).passed


# Pages ------------------------------------------------------------------------------------------


@pytest.fixture
def manager_client(db: None) -> Client:
    client = Client()
    client.force_login(make_user("ann", "release_manager"))
    return client


def _pages_answer(
    plan: RolloutPlan, client: Client, admin_api: APIClient, metrics_api: bool = True
) -> str:
    phase = plan.phases.get()
    assert client.get(reverse("dashboard:home")).status_code == 200
    page = client.get(reverse("dashboard:plan", args=[plan.pk]))
    assert page.status_code == 200
    run = client.post(reverse("dashboard:gate_run", args=[phase.pk]), follow=True)
    assert run.status_code == 200
    api_run = admin_api.post(f"/api/v1/plans/{plan.pk}/run-gate/")
    assert api_run.status_code == 200, api_run.content
    paths = ["/api/v1/metrics/error_rate/?flag=checkout", "/api/v1/metrics/big_sum/series/"]
    for path in paths if metrics_api else []:
        response = admin_api.get(path)
        assert response.status_code == 200, response.content
    return page.content.decode()


def test_pages__stored_1e308__answer_200_with_values(
    manager_client: Client, admin_api: APIClient
) -> None:
    MetricDefinition.objects.create(name="big_sum", aggregation="sum", metric="big")
    criteria = [
        {"description": "Errors", "metric": "error_rate", "comparator": "lt", "threshold": 0.5}
    ]
    plan = _plan([_guardrail("Spike", "error_rate", "alert")], criteria)
    _store_huge("requests", n=30)
    _store_huge("errors", n=2)
    _store_huge("big")
    services.check_guardrails(now=datetime.now(UTC))
    assert _latest("Spike").verdict == "fail"  # 2/30 errors, computed from clamped values
    _pages_answer(plan, manager_client, admin_api)


def test_pages__query_failing__200_and_error_shown_with_reason(
    overflowing: None, flaky: Flaky, manager_client: Client, admin_api: APIClient
) -> None:
    criteria = [
        {"description": "Big total", "metric": "big_sum", "comparator": "lt", "threshold": 5},
        {"description": "Remote", "metric": "flaky_metric", "comparator": "lt", "threshold": 5},
    ]
    plan = _plan([_guardrail("Remote check", "flaky_metric", "pause")], criteria)
    services.check_guardrails(now=datetime.now(UTC))
    # The pages that read guardrails and gates; the metrics API has no failing query to survive
    # with the clamp in place (tests/monitoring/test_hostile_values.py).
    page = _pages_answer(plan, manager_client, admin_api, metrics_api=False)
    assert "error: RuntimeError: upstream timed out" in page  # the guardrail and the criterion
    assert page.count("error: RuntimeError: upstream timed out") >= 2
    assert "out of range" in page  # the overflowing criterion, with PostgreSQL's reason
    assert "Remote check" in page
