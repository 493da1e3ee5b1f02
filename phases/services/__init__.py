"""Every write to plans, phases, ramps, gates and rollbacks. Split by concern; import from here."""

from phases.services.degradation import degradation_check
from phases.services.gates import checklist_tick, decide, evaluate_gate, sign_off
from phases.services.guardrails import check_guardrails, check_one, guardrail_create
from phases.services.plan_edit import plan_update
from phases.services.plans import (
    freeze_window_add,
    freeze_window_remove,
    live_plan_for_flag,
    phase_activate,
    plan_activate,
    plan_complete,
    plan_create,
    plan_create_from_template,
    plan_flags,
    plan_pause,
    plan_resume,
    plan_set_held,
    plan_state,
)
from phases.services.ramps import admit_cohorts, admit_one, advance_ramps, skip_reason, step_target
from phases.services.rollback import (
    plan_config,
    plan_restart_phase,
    plan_rollback,
    rollback_preview,
    safe_point_observe,
)

__all__ = [
    "admit_cohorts",
    "admit_one",
    "advance_ramps",
    "check_guardrails",
    "check_one",
    "checklist_tick",
    "decide",
    "degradation_check",
    "evaluate_gate",
    "freeze_window_add",
    "freeze_window_remove",
    "guardrail_create",
    "live_plan_for_flag",
    "phase_activate",
    "plan_activate",
    "plan_complete",
    "plan_config",
    "plan_create",
    "plan_create_from_template",
    "plan_flags",
    "plan_pause",
    "plan_restart_phase",
    "plan_resume",
    "plan_rollback",
    "plan_set_held",
    "plan_state",
    "plan_update",
    "rollback_preview",
    "safe_point_observe",
    "sign_off",
    "skip_reason",
    "step_target",
]
