"""The `feedback` metrics provider, registered with monitoring at start-up (apps.py).

Filters: `flag` (flag key), `plan` and `phase` (names, as recorded with each item at intake).

- `feedback_open_critical`: critical items open at the end of the window, however old. A gate's
  "zero open critical bugs" means none is open now, not "none filed lately", so the window
  start is ignored. "Open at the end" uses `closed_at`, so a past window counts the items that
  were still open then (with their current priority). A count: zero items is a valid answer,
  never insufficient data.
- `feedback_satisfaction`: mean of each rater's latest rating among the items filed in the
  window. A rater is the item's unit, else its organisation, else whoever submitted it (a client
  token sending no unit is one rater), so a flood from one unit counts once. It has data from
  SATISFACTION_MIN_UNITS raters (5 by default) or the definition's `min_samples`, the larger.
- `feedback_items_per_day`: items filed in the window, per day of window.
- `feedback_answered_in_time`: of the items filed in the window whose outcome is known at its end
  (answered, or past their deadline unanswered), the share first answered (triaged, commented)
  by their deadline. Items still within their deadline are not counted yet.

Below the definition's `min_samples` (rated items, items, or decided items) the last three are
insufficient data; a mean or a share of nothing is insufficient even with `min_samples` 0.
"""

from collections.abc import Callable, Mapping
from datetime import datetime

from django.conf import settings
from django.db.models import Avg, Case, CharField, Count, F, Q, QuerySet, Value, When, Window
from django.db.models.functions import Concat, RowNumber

from feedback.models import FeedbackItem, FeedbackPriority
from monitoring.models import MetricDefinition
from monitoring.providers import ERROR, OK, MetricResult

FILTER_COLUMNS = {"flag": "flag_key", "plan": "plan_name", "phase": "phase_name"}
SECONDS_PER_DAY = 86_400


def _scoped(filters: Mapping[str, str]) -> QuerySet[FeedbackItem]:
    return FeedbackItem.objects.filter(
        **{FILTER_COLUMNS[label]: value for label, value in filters.items()}
    )


def _filed_in(queryset: QuerySet, start: datetime, end: datetime) -> QuerySet:
    return queryset.filter(created_at__gt=start, created_at__lte=end)


def open_critical(
    queryset: QuerySet, definition: MetricDefinition, start: datetime, end: datetime
) -> MetricResult:
    count = (
        queryset.filter(priority=FeedbackPriority.CRITICAL, created_at__lte=end)
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gt=end))
        .count()
    )
    return MetricResult(value=float(count), samples=count, status=OK)


# Who gave a rating: the unit, else the organisation, else the submitter (token or user).
RATER = Case(
    When(~Q(unit=""), then=Concat(Value("unit:"), "unit")),
    When(~Q(org=""), then=Concat(Value("org:"), "org")),
    default=Concat(Value("by:"), "submitted_by"),
    output_field=CharField(),
)


def satisfaction(
    queryset: QuerySet, definition: MetricDefinition, start: datetime, end: datetime
) -> MetricResult:
    latest = (
        _filed_in(queryset, start, end)
        .filter(rating__isnull=False)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[RATER],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank=1)
    )
    row = latest.aggregate(n=Count("id"), mean=Avg("rating"))
    raters = row["n"] or 0
    needed = max(definition.min_samples, settings.SATISFACTION_MIN_UNITS, 1)
    if raters < needed:  # a mean of nothing, or of a handful of raters, is no answer
        return MetricResult.insufficient(raters, f"{raters} raters (need {needed})")
    return MetricResult(value=float(row["mean"]), samples=raters, status=OK)


def items_per_day(
    queryset: QuerySet, definition: MetricDefinition, start: datetime, end: datetime
) -> MetricResult:
    count = _filed_in(queryset, start, end).count()
    if count < definition.min_samples:
        return MetricResult.insufficient(count, f"{count} items (need {definition.min_samples})")
    days = (end - start).total_seconds() / SECONDS_PER_DAY
    return MetricResult(value=count / days, samples=count, status=OK)


def answered_in_time(
    queryset: QuerySet, definition: MetricDefinition, start: datetime, end: datetime
) -> MetricResult:
    answered = Q(first_response_at__lte=end)
    row = _filed_in(queryset, start, end).aggregate(
        decided=Count("id", filter=answered | Q(due_at__lte=end)),
        in_time=Count("id", filter=answered & Q(first_response_at__lte=F("due_at"))),
    )
    decided = row["decided"] or 0
    if decided < max(definition.min_samples, 1):
        return MetricResult.insufficient(
            decided, f"{decided} items answered or due (need {definition.min_samples})"
        )
    return MetricResult(value=row["in_time"] / decided, samples=decided, status=OK)


Handler = Callable[[QuerySet, MetricDefinition, datetime, datetime], MetricResult]
HANDLERS: dict[str, Handler] = {
    "feedback_open_critical": open_critical,
    "feedback_satisfaction": satisfaction,
    "feedback_items_per_day": items_per_day,
    "feedback_answered_in_time": answered_in_time,
}


class FeedbackProvider:
    def evaluate(
        self,
        definition: MetricDefinition,
        *,
        start: datetime,
        end: datetime,
        filters: Mapping[str, str],
    ) -> MetricResult:
        handler = HANDLERS.get(definition.metric or definition.name)
        if handler is None:
            choices = ", ".join(sorted(HANDLERS))
            detail = f"feedback has no metric {definition.metric!r} (it has: {choices})"
            return MetricResult(value=None, samples=0, status=ERROR, detail=detail)
        unknown = set(filters) - set(FILTER_COLUMNS)
        if unknown:
            detail = f"feedback metrics filter on flag, plan and phase, not {min(unknown)!r}"
            return MetricResult(value=None, samples=0, status=ERROR, detail=detail)
        return handler(_scoped(filters), definition, start, end)
