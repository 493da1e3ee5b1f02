from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest

from flags.evaluation import ErrorCode, Evaluation, Reason, Snapshot, evaluate, evaluate_all
from flags.models import Cohort, CohortMember, Flag, FlagCohortRule
from rollout_control.core.parsers import is_text
from rollout_control.core.snapshots import store


def flag_snapshot() -> Snapshot:
    return store.get("flags")


def snapshot_age_seconds() -> float:
    return round(store.age(), 1)


def unhashable_attribute(context: object) -> str | None:
    """The first top-level attribute (what evaluation reads) whose text has no UTF-8 form, a
    lone surrogate: mmh3 5.3.1 crashes the process (SIGSEGV) hashing such a str. Contexts from
    clients are refused where they are parsed (rollout_control.core.parsers); this keeps any
    other caller from handing one to the evaluator. O(1) per ASCII value."""
    if not isinstance(context, dict):
        return None
    for name, value in context.items():
        if type(value) is str and not is_text(value):
            return name if is_text(name) else "(attribute)"
    return None


def _unhashable(evaluation: Evaluation, attribute: str) -> Evaluation:
    if evaluation.error_code == ErrorCode.FLAG_NOT_FOUND:
        return evaluation
    details = f"context attribute {attribute!r} must be valid Unicode text (a lone surrogate)"
    return Evaluation(
        evaluation.key, False, "off", Reason.ERROR, ErrorCode.INVALID_CONTEXT, details, {}
    )


def evaluate_flag(*, key: str, context: object) -> Evaluation:
    attribute = unhashable_attribute(context)
    if attribute is not None:
        return _unhashable(evaluate(flag_snapshot(), key, {}), attribute)
    return evaluate(flag_snapshot(), key, context)


def evaluate_flags(*, context: object, snapshot: Snapshot | None = None) -> list[Evaluation]:
    snapshot = snapshot or flag_snapshot()
    attribute = unhashable_attribute(context)
    if attribute is not None:
        return [_unhashable(e, attribute) for e in evaluate_all(snapshot, {})]
    return evaluate_all(snapshot, context)


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
