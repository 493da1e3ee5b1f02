"""The only place phases changes flags, always through flags.services (source "plan", so the
manual-change listener does not pause the plan for its own steps). Each call changes one thing
under the flag's row lock: one rule's percentage, or exposure taken away."""

from decimal import Decimal
from typing import Any

from flags.models import Flag
from flags.services import flag_set_rule_percentage, flag_state
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
    flag_set_rule_percentage(
        key=flag_key,
        cohort=cohort_key,
        basis_points=basis_points,
        actor=actor,
        reason=reason,
        source="plan",
        add_missing=True,
    )
