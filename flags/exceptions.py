from rollout_control.core.exceptions import (
    Conflict,
    DomainError,
    NotFound,
    VersionConflict,
    VersionMismatch,
)


class FlagNotFound(NotFound):
    code = "flag_not_found"


class CohortNotFound(NotFound):
    code = "cohort_not_found"


class FlagKeyTaken(DomainError):
    """The key is taken: a 400 naming `key`, as issue 3 lists a duplicate key with bad input."""

    code = "duplicate_key"


class InvalidFlagChange(DomainError):
    code = "invalid"


class CohortInUse(Conflict):
    code = "cohort_in_use"


class OptInClosed(Conflict):
    """The cohort exists but does not take opt-ins: its state, not the request, is in the way."""

    code = "opt_in_closed"


__all__ = [
    "CohortInUse",
    "CohortNotFound",
    "FlagKeyTaken",
    "FlagNotFound",
    "InvalidFlagChange",
    "OptInClosed",
    "VersionConflict",
    "VersionMismatch",
]
