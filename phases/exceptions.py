from rollout_control.core.exceptions import Conflict, DomainError


class InvalidPlan(DomainError):
    code = "invalid_plan"


class PlanConflict(Conflict):
    code = "plan_conflict"


class PhaseNotActive(Conflict):
    code = "phase_not_active"


class GateFailing(Conflict):
    code = "gate_failing"


class NotAllowed(DomainError):
    status_code = 403
    code = "permission_denied"
