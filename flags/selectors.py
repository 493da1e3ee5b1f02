from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest

from flags.evaluation import Evaluation, Snapshot, evaluate, evaluate_all
from flags.models import Cohort, CohortMember, Flag, FlagCohortRule
from rollout_control.core.snapshots import store


def flag_snapshot() -> Snapshot:
    return store.get("flags")


def snapshot_age_seconds() -> float:
    return round(store.age(), 1)


def evaluate_flag(*, key: str, context: object) -> Evaluation:
    return evaluate(flag_snapshot(), key, context)


def evaluate_flags(*, context: object) -> list[Evaluation]:
    return evaluate_all(flag_snapshot(), context)


def evaluate_for_request(*, key: str, request: HttpRequest) -> Evaluation:
    """The logged-in user's id is the targeting key (what waffle's helpers use)."""
    user = getattr(request, "user", None)
    context = {"targetingKey": str(user.pk)} if user is not None and user.is_authenticated else {}
    return evaluate_flag(key=key, context=context)


def _flags() -> QuerySet[Flag]:
    rules = FlagCohortRule.objects.select_related("cohort").order_by("position")
    return Flag.objects.prefetch_related(Prefetch("cohort_rules", queryset=rules))


def flag_list(*, archived: bool | None = False, search: str = "") -> QuerySet[Flag]:
    queryset = _flags()
    if archived is not None:
        queryset = queryset.filter(archived=archived)
    if search:
        queryset = queryset.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return queryset.order_by("name")


def flag_get(*, key: str, include_archived: bool = False) -> Flag | None:
    queryset = _flags().filter(name=key)
    if not include_archived:
        queryset = queryset.filter(archived=False)
    return queryset.first()


def cohort_get(*, key: str) -> Cohort | None:
    return Cohort.objects.filter(key=key).first()


def cohort_list(*, search: str = "") -> QuerySet[Cohort]:
    queryset = Cohort.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__kind=CohortMember.Kind.MEMBER)),
        opt_in_count=Count("memberships", filter=Q(memberships__kind=CohortMember.Kind.OPT_IN)),
    )
    if search:
        queryset = queryset.filter(Q(key__icontains=search) | Q(name__icontains=search))
    return queryset.order_by("key")
