"""The only place phases changes flags, always through flags.services (source "plan", so the
manual-change listener does not pause the plan for its own steps)."""

from decimal import Decimal
from typing import Any

from flags.models import Flag
from flags.services import CohortRuleInput, flag_state, flag_update
from rollout_control.core.actors import Actor


def _bp(percentage: float | int) -> int:
    return int(Decimal(str(percentage)) * 100)


def current_bp(state: dict[str, Any], cohort_key: str | None) -> int | None:
    """The percentage (basis points) that applies to a cohort's rule, or the default; None when
    the flag has no rule for that cohort yet."""
    if cohort_key is None:
        return _bp(state["rollout_percentage"])
    for rule in state["cohort_rules"]:
        if rule["cohort"] == cohort_key:
            return _bp(rule["percentage"])
    return None


def flag_current_bp(flag_key: str, cohort_key: str | None) -> int:
    return current_bp(flag_state(Flag.objects.get(name=flag_key)), cohort_key) or 0


def set_bp(
    *, flag_key: str, cohort_key: str | None, basis_points: int, actor: Actor, reason: str
) -> None:
    state = flag_state(Flag.objects.get(name=flag_key))
    percentage = Decimal(basis_points) / 100
    if cohort_key is None:
        changes: dict[str, Any] = {"rollout_percentage": percentage}
    else:
        rules = [
            CohortRuleInput(r["cohort"], Decimal(str(r["percentage"])))
            for r in state["cohort_rules"]
        ]
        for index, rule in enumerate(rules):
            if rule.cohort == cohort_key:
                rules[index] = CohortRuleInput(cohort_key, percentage)
                break
        else:
            rules.append(CohortRuleInput(cohort_key, percentage))
        changes = {"cohort_rules": rules}
    flag_update(key=flag_key, actor=actor, changes=changes, reason=reason, source="plan")


def restore_state(
    *, flag_key: str, state: dict[str, Any] | None, actor: Actor, reason: str
) -> None:
    """Puts a flag back to a checkpointed state, or kills it when there is none."""
    if state is None:
        changes: dict[str, Any] = {"kill_switch": True}
    else:
        changes = {
            "rollout_percentage": Decimal(str(state["rollout_percentage"])),
            "cohort_rules": [
                CohortRuleInput(r["cohort"], Decimal(str(r["percentage"])))
                for r in state["cohort_rules"]
            ],
            "kill_switch": state["kill_switch"],
            "forced_on": state["forced_on"],
            "excluded_units": state["excluded_units"],
        }
    flag_update(key=flag_key, actor=actor, changes=changes, reason=reason, source="plan")
