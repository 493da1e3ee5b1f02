"""A two-flag feature release from internal testing to full launch, under frozen time: daily
ramps, a gate failing on a metric computed from ingested samples (NO-GO), then passing (GO) with
the required sign-offs; both flags at 100 % at the end; one audit entry per change."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import F

from flags.selectors import evaluate_flag
from monitoring.services import samples_ingest
from phases import services
from phases.exceptions import GateFailing, NotAllowed
from phases.models import Decision, GateReview, RampStep
from phases.services.flagops import flag_current_bp
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM, two_flag_release

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, after the 9:00 step hour


def _traffic(errors: int, requests: int = 1000, samples: int = 20) -> None:
    now = datetime.now(UTC)
    samples_ingest(
        items=[
            {"metric": "requests", "value": requests / samples, "timestamp": now.isoformat()}
            for _ in range(samples)
        ]
        + [{"metric": "errors", "value": errors, "timestamp": now.isoformat()}]
    )


def test_feature_release__internal_testing_to_full_launch(
    release_flags: dict, managers: tuple, supporter: object
) -> None:
    ann, bob = managers
    plan = services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        actor=SYSTEM,
        cohorts={c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]},
    )
    audit_start = AuditEntry.objects.count()
    traveller = time_machine.travel(START, tick=False)
    clock = traveller.start()
    try:
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        assert flag_current_bp("scenes", "internal") == 10000

        def phase() -> object:
            return plan.phases.get(status="active")

        def live_days(days: int) -> None:
            for _ in range(days):
                clock.shift(timedelta(days=1))
                services.advance_ramps(now=datetime.now(UTC))

        def sign(*users: object) -> None:
            for user in users:
                services.sign_off(phase=phase(), user=user)

        # Internal testing: the error rate is 2 % -> the gate fails -> NO-GO.
        live_days(14)
        _traffic(errors=20)
        review = services.evaluate_gate(phase=phase(), actor=SYSTEM)
        assert not review.passed
        assert review.results[0]["verdict"] == "fail"
        assert review.results[0]["observed"] == pytest.approx(0.02)
        with pytest.raises(GateFailing, match="override"):
            services.decide(phase=phase(), kind="go", user=ann)
        with pytest.raises(NotAllowed):
            services.decide(phase=phase(), kind="no_go", user=supporter, comment="not my call")
        services.decide(phase=phase(), kind="no_go", user=ann, comment="error rate 2 %, fixing")
        assert phase().name == "Internal testing"

        # Fixed: a day later only good traffic is in the 24 h window.
        live_days(1)
        _traffic(errors=1)
        with pytest.raises(GateFailing, match="Sign-off missing"):
            services.decide(phase=phase(), kind="go", user=ann)
        sign(ann)
        with pytest.raises(GateFailing, match="only one who signed"):
            services.decide(phase=phase(), kind="go", user=ann)
        sign(bob)
        services.decide(phase=phase(), kind="go", user=ann, comment="clean")
        assert phase().name == "Closed beta"
        assert flag_current_bp("scenes", "external_beta") == 10000

        for name, signers in [
            ("Closed beta", (bob, supporter)),
            ("Open beta", (supporter,)),
            ("Limited production", (supporter,)),
        ]:
            assert phase().name == name
            live_days(phase().min_duration_days)
            _traffic(errors=1)
            sign(*signers)
            services.decide(phase=phase(), kind="go", user=ann, comment=f"{name} done")

        assert phase().name == "Full launch"
        assert flag_current_bp("reports", "open_beta") == 10000
        assert flag_current_bp("reports", "paying") == 10000
        live_days(14)  # ten weekdays: 10 % + 9 steps of 10 points = 100 %
        assert flag_current_bp("scenes", None) == 10000
        assert flag_current_bp("reports", None) == 10000
        _traffic(errors=0)
        services.decide(
            phase=phase(),
            kind="go",
            user=ann,
            comment="launched",
            override_reason="no satisfaction data yet",
        )
    finally:
        traveller.stop()

    plan.refresh_from_db()
    assert plan.status == "completed"
    for unit in ["stranger-1", "stranger-2", "dev-1"]:
        assert evaluate_flag(key="scenes", context={"targetingKey": unit}).value is True
        assert evaluate_flag(key="reports", context={"targetingKey": unit}).value is True

    # One audit entry per change: every flag change is one ramp/activation step that moved a value.
    entries = AuditEntry.objects.filter(pk__gt=0).order_by("id")[audit_start:]
    actions = Counter(entry.action for entry in entries)
    moved = RampStep.objects.exclude(from_bp=F("to_bp")).count()
    assert actions["flag.update"] == moved
    assert actions == Counter(
        {
            "flag.update": moved,
            "plan.activate": 1,
            "phase.activate": 5,
            "gate.review": GateReview.objects.count(),
            "gate.sign_off": 6,  # 2 + 2 + 1 + 1
            "gate.decide.no_go": 1,
            "gate.decide.go": 5,
            "plan.complete": 1,
        }
    )
    assert Decision.objects.filter(kind="go").exclude(override_reason="").count() == 1
