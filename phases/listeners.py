"""How phases hooks into flags without flags knowing about plans (registered at start-up)."""

from flags.models import Flag
from flags.services import on_flag_changed
from flags.snapshot import register_metadata_provider
from phases.models import Phase, RolloutPlan
from rollout_control.core.actors import Actor

LIVE = (RolloutPlan.Status.ACTIVE, RolloutPlan.Status.PAUSED)


def plan_metadata() -> dict[str, dict[str, str]]:
    """Every flag in a live plan carries the plan and its active phase in evaluation metadata."""
    rows = (
        Phase.objects.filter(plan__status__in=LIVE, status=Phase.Status.ACTIVE)
        .values_list("targets__flag__name", "plan__name", "name")
        .distinct()
    )
    return {flag: {"plan": plan, "phase": phase} for flag, plan, phase in rows if flag}


def pause_plan_on_manual_change(flag: Flag, actor: Actor, source: str) -> None:
    """A person changing a flag an active plan governs pauses that plan, and says so."""
    if source != "manual":
        return
    from phases.services import live_plan_for_flag, plan_pause

    plan = live_plan_for_flag(flag.name)
    if plan is not None and plan.status == RolloutPlan.Status.ACTIVE:
        plan_pause(
            plan=plan,
            actor=Actor.system("phases"),
            reason=f"Paused: flag {flag.name!r} was changed by hand by {actor.label}.",
        )


register_metadata_provider(plan_metadata)
on_flag_changed(pause_plan_on_manual_change)
