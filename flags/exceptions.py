from rollout_control.core.exceptions import Conflict, DomainError, NotFound, PreconditionFailed


class FlagNotFound(NotFound):
    code = "flag_not_found"


class CohortNotFound(NotFound):
    code = "cohort_not_found"


class FlagKeyTaken(Conflict):
    code = "duplicate_key"
    status_code = 400


class VersionMismatch(PreconditionFailed):
    code = "version_mismatch"


class InvalidFlagChange(DomainError):
    code = "invalid"


class CohortInUse(Conflict):
    code = "cohort_in_use"
