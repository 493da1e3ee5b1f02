"""Feedback's domain errors; the API maps them to the documented error shape."""

from rollout_control.core.exceptions import Conflict, DomainError, NotFound


class InvalidFeedback(DomainError):
    code = "invalid"


class FeedbackNotFound(NotFound):
    code = "feedback_not_found"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class ExclusionNotPossible(Conflict):
    code = "exclusion_not_possible"
