import re
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from feedback.models import FeedbackEvent, FeedbackItem
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT

OPEN = "open"
UNASSIGNED = "none"
_ID = re.compile(r"^#?(\d{1,18})$")


@dataclass(frozen=True, slots=True)
class FeedbackFilters:
    """Queue filters; empty means "any". `status` also takes "open" (new, triaged, in progress)."""

    status: str = ""
    type: str = ""
    priority: str = ""
    assignee: str = ""
    plan: str = ""
    phase: str = ""
    flag: str = ""
    unit: str = ""
    overdue: bool = False
    q: str = ""


def feedback_list(
    *, filters: FeedbackFilters = FeedbackFilters(), now: datetime | None = None
) -> QuerySet[FeedbackItem]:
    """Matching items, the next deadline first."""
    queryset = FeedbackItem.objects.select_related("assignee")
    if filters.status == OPEN:
        queryset = queryset.filter(status__in=FeedbackItem.OPEN_STATUSES)
    elif filters.status:
        queryset = queryset.filter(status=filters.status)
    for name in ("type", "priority"):
        if value := getattr(filters, name):
            queryset = queryset.filter(**{name: value})
    if filters.assignee == UNASSIGNED:
        queryset = queryset.filter(assignee__isnull=True)
    elif filters.assignee:
        queryset = queryset.filter(assignee__username=filters.assignee)
    if filters.plan:
        queryset = queryset.filter(plan_name=filters.plan)
    if filters.phase:
        queryset = queryset.filter(phase_name=filters.phase)
    if filters.flag:
        queryset = queryset.filter(flag_key=filters.flag)
    if filters.unit:
        queryset = queryset.filter(unit=filters.unit)
    if filters.overdue:
        queryset = queryset.filter(
            status__in=FeedbackItem.OPEN_STATUSES,
            first_response_at__isnull=True,
            due_at__lte=now or timezone.now(),
        )
    if filters.q:
        queryset = queryset.filter(_search(filters.q.strip()))
    return queryset.order_by("due_at", "id")


def _search(text: str) -> Q:
    query = (
        Q(text__icontains=text)
        | Q(unit__icontains=text)
        | Q(org__icontains=text)
        | Q(flag_key__icontains=text)
        | Q(app_version__icontains=text)
    )
    if match := _ID.match(text):
        query |= Q(pk=int(match.group(1)))
    return query


def feedback_get(*, pk: int) -> FeedbackItem | None:
    """One item with its comments and history, for its page and the API's detail."""
    return (
        FeedbackItem.objects.select_related("assignee", "duplicate_of", "plan", "phase")
        .prefetch_related(
            "comments",
            Prefetch("events", queryset=FeedbackEvent.objects.order_by("created_at", "id")),
            "duplicates",
        )
        .filter(pk=pk)
        .first()
    )


def feedback_items_by_ids(*, ids: list[int]) -> QuerySet[FeedbackItem]:
    return FeedbackItem.objects.filter(pk__in=ids)


def staff_users() -> QuerySet[AbstractBaseUser]:
    """Who can be assigned: active users with the support or release_manager role."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name__in=[SUPPORT, RELEASE_MANAGER]) | Q(is_superuser=True))
        .distinct()
        .order_by("username")
    )


@dataclass(frozen=True, slots=True)
class FilterOptions:
    plans: list[str]
    phases: list[str]
    flags: list[str]
    assignees: list[str]


def filter_options() -> FilterOptions:
    """Values the queue's filter menus offer: those that occur on items, and the staff."""

    def distinct(column: str) -> list[str]:
        rows = FeedbackItem.objects.exclude(**{column: ""}).order_by(column)
        return list(rows.values_list(column, flat=True).distinct())

    return FilterOptions(
        plans=distinct("plan_name"),
        phases=distinct("phase_name"),
        flags=distinct("flag_key"),
        assignees=list(staff_users().values_list("username", flat=True)),
    )


@dataclass(frozen=True, slots=True)
class QueueCounts:
    open_by_priority: dict[str, int]
    overdue: int


def queue_counts(*, now: datetime | None = None) -> QueueCounts:
    """Open items per priority and the overdue ones, in one query."""
    now = now or timezone.now()
    late = Q(first_response_at__isnull=True, due_at__lte=now)
    rows = (
        FeedbackItem.objects.filter(status__in=FeedbackItem.OPEN_STATUSES)
        .order_by()
        .values("priority")
        .annotate(n=Count("id"), late=Count("id", filter=late))
    )
    by_priority = dict.fromkeys(FeedbackItem.Priority.values, 0)
    overdue = 0
    for row in rows:
        by_priority[row["priority"]] = row["n"]
        overdue += row["late"]
    return QueueCounts(open_by_priority=by_priority, overdue=overdue)
