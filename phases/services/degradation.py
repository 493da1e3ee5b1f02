"""Graceful degradation under load. Stress above 0.8 turns off the non-essential flags; above
0.9 also the flags of plans still ramping (launched core features stay). Once stress has stayed
below 0.7 for ten minutes, every flag comes back exactly as it was. Insufficient data changes
nothing."""

import datetime as dt
import logging
from typing import Any

from django.db import transaction

from flags.exposure import switched_off
from flags.models import Flag
from flags.services import flag_lock, flag_lower, flag_set_kill_switch
from monitoring.exceptions import UnknownMetric
from monitoring.selectors import metric_value
from phases.models import DegradationState, Phase, RolloutPlan
from phases.services import flagops
from rollout_control.core.actors import Actor
from rollout_control.core.notifications import notify
from rollout_control.core.services import audit_record

logger = logging.getLogger(__name__)
LEVEL_1, LEVEL_2, CALM = 0.8, 0.9, 0.7
CALM_FOR = dt.timedelta(minutes=10)
WINDOW = dt.timedelta(minutes=2)
ACTOR = Actor.system("degradation")


def _ramping_flags() -> set[str]:
    keys = set()
    for phase in Phase.objects.filter(
        status=Phase.Status.ACTIVE, plan__status=RolloutPlan.Status.ACTIVE
    ):
        for target in phase.targets.select_related("flag", "cohort"):
            current = flagops.flag_current_bp(
                target.flag.name, target.cohort.key if target.cohort_id else None
            )
            if current < target.target_bp:
                keys.add(target.flag.name)
    return keys


def _flags_for(level: int) -> set[str]:
    """Level 1: every non-essential flag. Level 2: also every flag a plan is still ramping (a
    feature on its way out is not yet a core feature). Flags already killed are left alone."""
    live = Flag.objects.filter(archived=False).exclude(everyone=False)
    keys = set(live.filter(tier=Flag.Tier.NON_ESSENTIAL).values_list("name", flat=True))
    if level >= 2:
        keys |= _ramping_flags() & set(live.values_list("name", flat=True))
    return keys


def _turn_off(state: DegradationState, keys: set[str]) -> list[str]:
    turned = []
    for key in sorted(keys - set(state.saved)):
        # Under the row lock: a flag a person killed meanwhile is theirs and is left alone.
        changed = flag_lower(
            key=key, to=switched_off, actor=ACTOR, reason="graceful degradation",
            source="degradation",
        )  # fmt: skip
        if changed is not None:
            state.saved[key] = changed[0]
            turned.append(key)
    return turned


def _restore(state: DegradationState) -> tuple[list[str], list[str]]:
    """Releases the kill switches degradation turned on, and only those: a flag whose kill
    switch a person (or a rollback) turned on meanwhile stays off."""
    restored, kept = [], []
    for key in sorted(state.saved):
        with transaction.atomic():
            flag = Flag.objects.filter(name=key, archived=False).first()
            if flag is None:
                continue
            flag = flag_lock(key)
            if flag.everyone is False and flag.kill_switch_source == "degradation":
                flag_set_kill_switch(
                    key=key, killed=False, actor=ACTOR, reason="degradation over",
                    source="degradation",
                )  # fmt: skip
                restored.append(key)
            elif flag.everyone is False:
                kept.append(key)
    state.saved = {}
    return restored, kept


def degradation_check(*, now: dt.datetime) -> dict[str, Any]:
    try:
        with transaction.atomic():  # a savepoint: a failed query leaves the caller usable
            result = metric_value(name="stress", window=WINDOW, now=now)
    except UnknownMetric:
        return {"level": None}
    except Exception as exc:
        # Stress that cannot be read changes nothing (like insufficient data), and says so.
        logger.exception("degradation: stress could not be read")
        return {"level": None, "error": str(exc)[:200]}
    with transaction.atomic():
        state, _ = DegradationState.objects.select_for_update().get_or_create(pk=1)
        if result.status != "ok" or result.value is None:
            return {"level": state.level, "stress": None}
        stress = result.value
        before = {"level": state.level, "flags_off": sorted(state.saved)}
        wanted = 2 if stress > LEVEL_2 else 1 if stress > LEVEL_1 else 0
        changed: list[str] = []
        kept: list[str] = []
        state.last_stress = stress
        if wanted > 0:
            state.calm_since = None
            state.level = max(state.level, wanted)
            changed = _turn_off(state, _flags_for(state.level))
        elif stress < CALM:
            state.calm_since = state.calm_since or now
            if state.level and now - state.calm_since >= CALM_FOR:
                changed, kept = _restore(state)
                state.level = 0
        else:
            state.calm_since = None
        if changed or before["level"] != state.level:
            state.changed_at = now
            after = {"level": state.level, "flags_off": sorted(state.saved), "stress": stress}
            audit_record(
                actor=ACTOR, action="degradation.change", obj=state, before=before, after=after
            )
            subject = f"[degradation] level {state.level} (stress {stress:.2f})"
            text = f"{subject}; changed: {', '.join(changed)}"
            if kept:
                text += f"; left off (turned off by someone else meanwhile): {', '.join(kept)}"
            notify(event="degradation", subject=subject, text=text, data=after | {"kept": kept})
        state.save()
        return {"level": state.level, "stress": stress, "changed": changed}
