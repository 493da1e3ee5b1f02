"""The quickstart's demo: the two seed plans, part-way through, with history and live metrics.

Built only through the apps' services, with explicit past times, so it looks like what a few
weeks of real use leaves behind. Idempotent: an existing demo is left as it is."""

import datetime as dt
import random

from django.contrib.auth import get_user_model
from django.utils import timezone

from flags import services as flags
from flags.models import Flag
from monitoring.services import events_ingest, samples_ingest
from phases import services as phases
from phases.models import RolloutPlan
from rollout_control.core.actors import Actor

SYSTEM = Actor.system("demo")
RELEASE = "Stripboard scenes"
ONBOARDING = "IFM platform onboarding"
ORGS = [f"org-{n:02d}" for n in range(1, 35)]


def _cohorts() -> None:
    specs = [
        (
            "internal",
            "Internal testers",
            "targetingKey",
            False,
            [f"staff-{n}" for n in range(1, 11)],
        ),
        (
            "external-beta",
            "External beta testers",
            "targetingKey",
            False,
            [f"beta-{n}" for n in range(1, 26)],
        ),
        ("open-beta", "Open beta (opt-in)", "targetingKey", True, []),
        ("power-users", "Power users", "targetingKey", False, [f"power-{n}" for n in range(1, 41)]),
        ("paying", "All paying customers", "targetingKey", False, []),
        ("ifm-dev", "IFM dev team", "orgId", False, ["org-dev"]),
        ("nonprofits", "Nonprofit organisations", "orgId", False, []),
    ]
    for key, name, attribute, opt_in, members in specs:
        flags.cohort_create(
            key=key,
            name=name,
            match_attribute=attribute,
            opt_in=opt_in,
            actor=SYSTEM,
            contacts=[f"{key}@example.org"],
            rules=[{"attribute": "plan", "operator": "in", "values": ["pro", "studio"]}]
            if key == "paying"
            else [],
        )
        if members:
            flags.cohort_members_add(key=key, units=members, actor=SYSTEM)
    for n in range(1, 61):
        flags.cohort_opt_in(key="open-beta", unit=f"user-{n}", actor=SYSTEM)


def _flags() -> None:
    for key, description, tier in [
        ("scene-management", "Scene creation and management on the stripboard", "core"),
        ("scene-drag-drop", "Drag-and-drop scene reordering", "non_essential"),
        ("advanced-reporting", "Advanced reporting", "non_essential"),
        ("ifm-platform", "The IFM MVP platform", "core"),
    ]:
        flags.flag_create(
            key=key, description=description, tier=tier, owner="release-team", actor=SYSTEM
        )


def _signers() -> tuple[object, object, object]:
    users = get_user_model().objects
    return users.get(username="admin"), users.get(username="manager"), users.get(username="support")


def _go(plan: RolloutPlan, when: dt.datetime, note: str) -> None:
    admin, manager, support = _signers()
    phase = plan.phases.get(status="active")
    for user in (manager, support):
        if not phase.signoffs.filter(user=user).exists():
            phases.sign_off(phase=phase, user=user)
    phases.evaluate_gate(phase=phase, actor=Actor.for_user(admin), now=when)
    phases.decide(
        phase=phase,
        kind="go",
        user=admin,
        comment=note,
        override_reason="demo history: metrics from before the demo are not kept",
        now=when,
    )


def _days(plan_start: dt.datetime, first: int, last: int) -> None:
    for day in range(first, last):
        moment = plan_start + dt.timedelta(days=day, hours=1)
        if moment > timezone.now():
            return  # today's step is left to the real scheduler
        phases.advance_ramps(now=moment)
        phases.admit_cohorts(now=moment)


def _release(now: dt.datetime) -> None:
    start = (now - dt.timedelta(days=50)).replace(hour=9, minute=30, second=0, microsecond=0)
    plan = phases.plan_create_from_template(
        template_key="feature-release",
        name=RELEASE,
        actor=SYSTEM,
        flags={
            "basic": "scene-management",
            "drag_drop": "scene-drag-drop",
            "reporting": "advanced-reporting",
        },
        cohorts={
            "internal": "internal",
            "external_beta": "external-beta",
            "open_beta": "open-beta",
            "power_users": "power-users",
            "paying": "paying",
        },
        start_date=start.date(),
    )
    phases.plan_activate(plan=plan, actor=SYSTEM, now=start)
    _days(start, 1, 15)
    _go(plan, start + dt.timedelta(days=15), "Internal testing clean")
    _days(start, 16, 44)
    _go(plan, start + dt.timedelta(days=44), "Closed beta: testers happy")
    _days(start, 45, 51)  # open beta, ramping 10 points a weekday


def _onboarding(now: dt.datetime) -> None:
    start = (now - dt.timedelta(days=36)).replace(hour=9, minute=30, second=0, microsecond=0)
    plan = phases.plan_create_from_template(
        template_key="tenant-onboarding",
        name=ONBOARDING,
        actor=SYSTEM,
        flags={"platform": "ifm-platform"},
        cohorts={"dev_team": "ifm-dev", "organisations": "nonprofits"},
        waiting_lists={"organisations": ORGS},
        start_date=start.date(),
    )
    phases.plan_activate(plan=plan, actor=SYSTEM, now=start)
    _go(plan, start + dt.timedelta(days=14), "Internal testing passed")
    _days(start, 15, 28)
    _go(plan, start + dt.timedelta(days=28), "Pilot organisations onboarded")
    _days(start, 29, 37)


def _live_metrics(now: dt.datetime) -> None:
    """Two days of traffic for the charts: requests, errors, latency, stress, usage events."""
    rng = random.Random(42)  # noqa: S311 (demo data, not security)
    plan_flags = {
        RELEASE: ["scene-management", "scene-drag-drop", "advanced-reporting"],
        ONBOARDING: ["ifm-platform"],
    }
    samples = []
    for minutes in range(0, 48 * 60, 10):
        at = (now - dt.timedelta(minutes=minutes)).isoformat()
        samples.append(
            {"metric": "stress", "value": round(0.3 + 0.2 * rng.random(), 3), "timestamp": at}
        )
        for plan, keys in plan_flags.items():
            for key in keys:
                labels = {"flag": key, "plan": plan}
                requests = rng.randint(80, 120)
                samples.append(
                    {"metric": "requests", "value": requests, "timestamp": at, "labels": labels}
                )
                samples.append(
                    {
                        "metric": "errors",
                        "value": rng.randint(0, 1),
                        "timestamp": at,
                        "labels": labels,
                    }
                )
                for _ in range(3):
                    latency = rng.lognormvariate(5.0, 0.4)
                    samples.append(
                        {
                            "metric": "latency_ms",
                            "value": round(latency, 1),
                            "timestamp": at,
                            "labels": labels,
                        }
                    )
    for start in range(0, len(samples), 10_000):
        samples_ingest(items=samples[start : start + 10_000])
    events = []
    for n in range(1, 61):
        at = (now - dt.timedelta(hours=rng.randint(1, 40))).isoformat()
        events.append(
            {"unit": f"user-{n}", "flag": "scene-management", "action": "exposure", "timestamp": at}
        )
        if rng.random() < 0.75:
            events.append(
                {"unit": f"user-{n}", "flag": "scene-management", "action": "use", "timestamp": at}
            )
    events_ingest(items=events)


def demo_load() -> bool:
    """Builds the demo unless it exists. True when it was built now."""
    if Flag.objects.filter(name="scene-management").exists():
        return False
    now = timezone.now()
    _cohorts()
    _flags()
    _release(now)
    _onboarding(now)
    _live_metrics(now)
    return True
