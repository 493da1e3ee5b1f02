"""Exposure: who a flag's configuration turns on, as a value that can be compared and capped.

A rollback must never turn anything on. `capped(current, ceiling)` is the configuration that is
at most `current` for every unit and otherwise as close to `ceiling` as that allows:

- each percentage (the default and every cohort rule) is min(current, ceiling); a rule that the
  ceiling does not have goes to 0 (it was added after the ceiling, so its units are added ones);
- a kill switch that is on stays on, and the ceiling's kill switch is turned on;
- exclusions are the union of both (an exclusion takes a unit away);
- forced on survives only where both are forced on (forced on adds every unit);
- rules are never added, removed or reordered, so first-match stays the same for every unit.

Every unit's answer under `capped` is therefore on only if it is on under `current` (bucketing is
monotonic in the percentage, and nothing that decides which rule matches changes).
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Exposure:
    basis_points: int
    rules: tuple[tuple[str, int], ...]  # (cohort key, basis points), in match order
    killed: bool
    forced_on: bool
    excluded: frozenset[str]

    def rule(self, cohort: str) -> int | None:
        for key, points in self.rules:
            if key == cohort:
                return points
        return None


def _bp(percentage: Any) -> int:
    return int(Decimal(str(percentage)) * 100)


def exposure_of(state: Mapping[str, Any]) -> Exposure:
    """From a flag state as `flags.services.flag_state` records it (API, audit, checkpoints)."""
    return Exposure(
        basis_points=_bp(state["rollout_percentage"]),
        rules=tuple((rule["cohort"], _bp(rule["percentage"])) for rule in state["cohort_rules"]),
        killed=bool(state["kill_switch"]),
        forced_on=bool(state["forced_on"]),
        excluded=frozenset(str(unit) for unit in state["excluded_units"]),
    )


def capped(current: Exposure, ceiling: Exposure) -> Exposure:
    killed = current.killed or ceiling.killed
    return replace(
        current,
        basis_points=min(current.basis_points, ceiling.basis_points),
        rules=tuple(
            (cohort, min(points, ceiling.rule(cohort) or 0)) for cohort, points in current.rules
        ),
        killed=killed,
        forced_on=current.forced_on and ceiling.forced_on and not killed,
        excluded=current.excluded | ceiling.excluded,
    )


def switched_off(current: Exposure) -> Exposure:
    """The kill switch on, everything else as it is (a person can see what it was)."""
    return replace(current, killed=True, forced_on=False)
