from rollout_control.core.exceptions import DomainError, NotFound


class InvalidBatch(DomainError):
    """A batch with bad items: every bad item is listed, nothing is stored."""

    code = "invalid_batch"

    def __init__(self, message: str, *, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields


class UnknownMetric(NotFound):
    code = "unknown_metric"


class MetricNameTaken(DomainError):
    """A 400 naming `name`, like a taken flag or cohort key."""

    code = "duplicate_name"


class InvalidQuery(DomainError):
    code = "invalid_query"
