"""The quickstart's demo: the two seed plans, part-way through, with history and live metrics.

Built only through the apps' services, with explicit past times, so it looks like what a few
weeks of real use leaves behind. Idempotent: an existing demo is left as it is."""

import datetime as dt
import random
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import transaction
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
Event = tuple[dt.datetime, Callable[[], object]]


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


def _release(start: dt.datetime) -> tuple[RolloutPlan, list[Event]]:
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
    # Open beta then ramps 10 points a weekday, left part-way.
    return plan, _plan_events(
        plan, start, [(15, "Internal testing clean"), (44, "Closed beta: testers happy")]
    )


def _onboarding(start: dt.datetime) -> tuple[RolloutPlan, list[Event]]:
    plan = phases.plan_create_from_template(
        template_key="tenant-onboarding",
        name=ONBOARDING,
        actor=SYSTEM,
        flags={"platform": "ifm-platform"},
        cohorts={"dev_team": "ifm-dev", "organisations": "nonprofits"},
        waiting_lists={"organisations": ORGS},
        start_date=start.date(),
    )
    return plan, _plan_events(
        plan, start, [(14, "Internal testing passed"), (28, "Pilot organisations onboarded")]
    )


def _plan_events(
    plan: RolloutPlan, start: dt.datetime, gates: list[tuple[int, str]]
) -> list[Event]:
    """The plan's activation at `start`, then a GO after each (days, note)."""
    events: list[Event] = [
        (start, lambda: phases.plan_activate(plan=plan, actor=SYSTEM, now=start))
    ]
    for days, note in gates:
        when = start + dt.timedelta(days=days)
        events.append((when, lambda when=when, note=note: _go(plan, when, note)))
    return events


def _history(now: dt.datetime) -> None:
    """Both plans' weeks, in time order: activations and GO decisions at 9:30, and the
    scheduler's daily ramps and admissions at 10:30 (one run covers every plan, as beat does)."""
    release_start = (now - dt.timedelta(days=50)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    onboarding_start = release_start + dt.timedelta(days=14)
    _, release_events = _release(release_start)
    _, onboarding_events = _onboarding(onboarding_start)
    events = release_events + onboarding_events
    for day in range(1, 51):
        moment = release_start + dt.timedelta(days=day, hours=1)
        events.append((moment, lambda moment=moment: _scheduler_day(moment)))
    for moment, event in sorted(events, key=lambda item: item[0]):
        if moment <= now:  # today's step, if still to come, is left to the real scheduler
            event()


def _scheduler_day(moment: dt.datetime) -> None:
    phases.advance_ramps(now=moment)
    phases.admit_cohorts(now=moment)


PLAN_FLAGS = {
    RELEASE: ["scene-management", "scene-drag-drop", "advanced-reporting"],
    ONBOARDING: ["ifm-platform"],
}
GUARDRAIL_EVERY = dt.timedelta(hours=3)
SPIKE_AGO = dt.timedelta(days=3, hours=4)  # one error spike: an alert, not a rollback


def _traffic(rng: random.Random, at: dt.datetime, errors_per_minute: float) -> list[dict]:
    """One minute of traffic per flag, as client apps push it: requests, errors, latencies."""
    samples = []
    timestamp = at.isoformat()
    for plan, keys in PLAN_FLAGS.items():
        for key in keys:
            labels = {"flag": key, "plan": plan}
            requests = rng.randint(8, 14)
            errors = min(requests, int(errors_per_minute + rng.random()))
            samples.append(
                {"metric": "requests", "value": requests, "timestamp": timestamp, "labels": labels}
            )
            samples.append(
                {"metric": "errors", "value": errors, "timestamp": timestamp, "labels": labels}
            )
            samples.append(
                {
                    "metric": "latency_ms",
                    "value": round(rng.lognormvariate(5.0, 0.4), 1),
                    "timestamp": timestamp,
                    "labels": labels,
                }
            )
    samples.append({"metric": "data_corruption", "value": 0, "timestamp": timestamp})
    return samples


def _live_metrics(now: dt.datetime) -> None:
    """A week of traffic for the charts and the guardrails: every ten minutes a minute's worth,
    and before each guardrail check (every three hours) five minutes' worth, so each check has
    enough samples; the guardrails are then checked at those times, and the stress level now,
    as beat would have."""
    rng = random.Random(42)  # noqa: S311 (demo data, not security)
    week = dt.timedelta(days=7) - dt.timedelta(minutes=30)  # inside the raw-sample retention
    samples: list[dict] = []
    for minutes in range(0, int(week.total_seconds() // 60), 10):
        at = now - dt.timedelta(minutes=minutes)
        stress = round(0.3 + 0.2 * rng.random(), 3)
        samples.append({"metric": "stress", "value": stress, "timestamp": at.isoformat()})
        samples.extend(_traffic(rng, at, 0.03))
    checks = [now - GUARDRAIL_EVERY * n for n in range(int(week / GUARDRAIL_EVERY), -1, -1)]
    spike = min(checks, key=lambda at: abs(at - (now - SPIKE_AGO)))
    for at in checks:
        errors = 1.5 if at == spike else 0.03
        for minute in range(1, 6):
            moment = at - dt.timedelta(minutes=minute) + dt.timedelta(seconds=1)
            samples.extend(_traffic(rng, moment, errors))
    for start in range(0, len(samples), 10_000):
        samples_ingest(items=samples[start : start + 10_000])
    for at in checks:
        phases.check_guardrails(now=at)
    phases.degradation_check(now=now)
    _usage_events(rng, now)


def _usage_events(rng: random.Random, now: dt.datetime) -> None:
    """A week of exposures and uses (as far back as ingestion takes them); adoption grows."""
    units = {
        "scene-management": [f"user-{n}" for n in range(1, 61)],
        "scene-drag-drop": [f"user-{n}" for n in range(1, 61)],
        "advanced-reporting": [f"user-{n}" for n in range(1, 61)],
        "ifm-platform": ORGS[:13],
    }
    events = []
    for day in range(7):
        share = 0.5 + 0.05 * (6 - day)  # older days lower
        for flag, pool in units.items():
            for unit in rng.sample(pool, k=min(len(pool), rng.randint(12, 20))):
                at = (now - dt.timedelta(days=day, minutes=rng.randint(5, 1380))).isoformat()
                events.append({"unit": unit, "flag": flag, "action": "exposure", "timestamp": at})
                if rng.random() < share + (0.1 if flag == "scene-management" else 0):
                    events.append({"unit": unit, "flag": flag, "action": "use", "timestamp": at})
    events_ingest(items=events)


# Healthy on purpose: each plan's satisfaction (each unit's latest rating, at least
# SATISFACTION_MIN_UNITS units) is well above the guardrails' 4.0, so the demo does not roll
# itself back; the README shows how to break it.
FEEDBACK = [
    # type, text, rating, flag, unit
    ("praise", "Drag-and-drop reordering saves me an hour a day.", 5, "scene-drag-drop", "user-3"),
    (
        "praise",
        "The stripboard finally matches how we plan shoots.",
        5,
        "scene-management",
        "user-8",
    ),
    ("usability", "The scene colour picker is hard to find.", 4, "scene-management", "user-12"),
    ("feature_request", "Export the schedule as PDF, please.", 4, "advanced-reporting", "user-5"),
    (
        "bug",
        "Reordering two scenes quickly sometimes swaps the wrong ones.",
        3,
        "scene-drag-drop",
        "user-21",
    ),
    ("question", "Can cast members see the stripboard?", 4, "scene-management", "user-30"),
    (
        "bug",
        "Report totals are off by one day around month ends.",
        4,
        "advanced-reporting",
        "user-17",
    ),
    (
        "blocker",
        "Saving a board with 400 scenes fails: <b>Error 500</b>",
        None,
        "scene-management",
        "user-44",
    ),
    ("praise", "Colour-coding by location reads at a glance.", 5, "scene-management", "user-9"),
    ("praise", "Much faster than our old spreadsheet.", 5, "scene-drag-drop", "user-27"),
    ("praise", "Onboarding took our volunteers ten minutes.", 5, "ifm-platform", "org-02"),
    ("usability", "The donor list needs a search box.", 4, "ifm-platform", "org-05"),
    ("praise", "Volunteers sign up without calling us now.", 5, "ifm-platform", "org-07"),
    ("feature_request", "Let us import donors from a CSV file.", 4, "ifm-platform", "org-09"),
    ("praise", "Event reminders cut our no-shows in half.", 5, "ifm-platform", "org-11"),
    ("question", "Can two staff members edit one event?", 4, "ifm-platform", "org-03"),
]


def _feedback() -> None:
    from feedback.services import feedback_assign, feedback_create, feedback_transition

    support = _signers()[2]
    items = []
    for kind, text, rating, flag, unit in FEEDBACK:
        context = {"orgId": unit} if unit.startswith("org-") else {"targetingKey": unit}
        items.append(
            feedback_create(
                type=kind,
                text=text,
                rating=rating,
                flag_key=flag,
                unit=unit,
                context=context,
                actor=SYSTEM,
                app_version="2.4.1",
            )
        )
    staff = Actor.for_user(support)
    feedback_transition(item=items[4], status="triaged", actor=staff)
    feedback_assign(item=items[4], assignee=support, actor=staff)
    feedback_transition(item=items[4], status="in_progress", actor=staff)
    feedback_transition(item=items[0], status="closed", actor=staff, reason="thanked the user")


def demo_load() -> bool:
    """Builds the demo unless it exists. True when it was built now."""
    if Flag.objects.filter(name="scene-management").exists():
        return False
    now = timezone.now()
    # One transaction: all or nothing, and a thousand small service transactions become
    # savepoints instead of a disk flush each.
    with transaction.atomic():
        _cohorts()
        _flags()
        _history(now)
        _live_metrics(now)
        _feedback()
    return True
