from rollout_control.core.exceptions import DomainError


class InvalidBatch(DomainError):
    """A batch with bad items: every bad item is listed, nothing is stored."""

    code = "invalid_batch"

    def __init__(self, message: str, *, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields


class UnknownMetric(DomainError):
    code = "unknown_metric"


class InvalidQuery(DomainError):
    code = "invalid_query"
