"""Domain errors. Each app subclasses DomainError; the API maps them to the documented shape."""


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PreconditionFailed(DomainError):
    status_code = 412
    code = "precondition_failed"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class VersionMismatch(PreconditionFailed):
    """An `If-Match` version that is no longer current (HTTP 412)."""

    code = "version_mismatch"


class VersionConflict(Conflict):
    """An edit that says which version it started from (`"version": N` in the body) when another
    edit has landed since (HTTP 409): one of two concurrent edits wins, the other is told."""

    code = "version_conflict"


class Forbidden(DomainError):
    """The caller may not do this (HTTP 403), e.g. tie a token to someone else."""

    status_code = 403
    code = "permission_denied"
