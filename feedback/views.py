"""The support queue: server-rendered pages, with htmx swapping the results in place (filters,
pages, bulk changes). Every page works without JavaScript too."""

import csv
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feedback import selectors, services
from feedback.forms import (
    AssignForm,
    BulkForm,
    CommentForm,
    FeedbackCreateForm,
    FeedbackFilterForm,
    PriorityForm,
    ReasonForm,
    StatusForm,
)
from feedback.models import FeedbackEvent, FeedbackItem, FeedbackSource, FeedbackStatus
from feedback.selectors import OPEN, UNASSIGNED
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.roles import is_reader, is_release_manager

PAGE_SIZE = 50
View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Logged in, with the support or release_manager role."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_reader(request):
            raise PermissionDenied("The feedback queue is for support staff and release managers.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def _filter_form(
    params: QueryDict, options: selectors.FilterOptions | None = None
) -> FeedbackFilterForm:
    data = params.copy()
    if "status" not in data:
        data["status"] = OPEN  # the queue opens on what still needs doing
    return FeedbackFilterForm(data, options=options)


def _queue_context(params: QueryDict, *, message: str = "", error: bool = False) -> dict:
    options = selectors.filter_options()
    form = _filter_form(params, options)
    items = (
        selectors.feedback_list(filters=form.filters())
        if form.is_valid()
        else FeedbackItem.objects.none()
    )
    page = Paginator(items, PAGE_SIZE).get_page(params.get("page"))
    query = params.copy()
    query.pop("page", None)
    return {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "now": timezone.now(),
        "message": message,
        "message_is_error": error,
        "bulk_statuses": [c for c in FeedbackStatus.choices if c[0] in services.BULK_STATUSES],
        "assignees": options.assignees,
    }


@require_GET
@staff_required
def queue(request: HttpRequest) -> HttpResponse:
    context = _queue_context(request.GET)
    if _is_htmx(request):
        return render(request, "feedback/_results.html", context | {"oob": True})
    return render(request, "feedback/queue.html", context)


def _bulk_message(verb: str, result: services.BulkResult, requested: list[int]) -> str:
    missing = set(requested) - set(result.changed) - set(result.skipped)
    skipped = result.skipped | dict.fromkeys(sorted(missing), "no such item")
    text = f"{verb} {len(result.changed)} item(s)."
    if skipped:
        reasons = "; ".join(f"#{pk}: {why}" for pk, why in sorted(skipped.items()))
        text += f" Skipped {len(skipped)}: {reasons}."
    return text


@require_POST
@staff_required
def bulk(request: HttpRequest) -> HttpResponse:
    params = QueryDict(request.POST.get("query", ""))
    form = BulkForm(request.POST)
    actor = Actor.for_user(request.user)
    error = True
    if not form.is_valid():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        ids = form.cleaned_data["ids"]
        try:
            if form.cleaned_data["action"] == "assign":
                username = form.cleaned_data["assignee"]
                assignee = None if username in ("", UNASSIGNED) else services.staff_user(username)
                result = services.feedback_bulk_assign(ids=ids, assignee=assignee, actor=actor)
                who = assignee.get_username() if assignee else "nobody"
                message = _bulk_message(f"Assigned to {who}:", result, ids)
            else:
                status = form.cleaned_data["status"]
                result = services.feedback_bulk_transition(ids=ids, status=status, actor=actor)
                label = FeedbackStatus(status).label.lower()
                message = _bulk_message(f"Changed to {label}:", result, ids)
            error = not result.changed
        except DomainError as exc:
            message = exc.message
    if _is_htmx(request):
        context = _queue_context(params, message=message, error=error)
        return render(request, "feedback/_results.html", context | {"oob": True})
    (messages.error if error else messages.success)(request, message)
    return HttpResponseRedirect(f"{reverse('feedback:queue')}?{params.urlencode()}")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    ("id", lambda i: i.pk),
    ("created_at", lambda i: i.created_at.isoformat()),
    ("due_at", lambda i: i.due_at.isoformat()),
    ("status", lambda i: i.status),
    ("priority", lambda i: i.priority),
    ("type", lambda i: i.type),
    ("overdue", lambda i: "yes" if i.is_overdue() else "no"),
    ("rating", lambda i: i.rating or ""),
    ("flag", lambda i: i.flag_key),
    ("flag_value", lambda i: "" if i.flag_value is None else str(i.flag_value).lower()),
    ("flag_percentage", lambda i: "" if i.flag_percentage is None else i.flag_percentage),
    ("cohort", lambda i: i.flag_cohort),
    ("plan", lambda i: i.plan_name),
    ("phase", lambda i: i.phase_name),
    ("unit", lambda i: i.unit),
    ("org", lambda i: i.org),
    ("app_version", lambda i: i.app_version),
    ("assignee", lambda i: i.assignee.get_username() if i.assignee_id else ""),
    ("first_response_at", lambda i: i.first_response_at.isoformat() if i.first_response_at else ""),
    ("closed_at", lambda i: i.closed_at.isoformat() if i.closed_at else ""),
    (
        "time_to_resolution_seconds",
        lambda i: int(i.time_to_resolution.total_seconds()) if i.time_to_resolution else "",
    ),
    ("text", lambda i: i.text),
]


def _cell(value: object) -> str:
    text = str(value)
    # A spreadsheet would run "=HYPERLINK(...)" typed by a beta user: make it plain text.
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@staff_required
def export_csv(request: HttpRequest) -> HttpResponse:
    form = _filter_form(request.GET)
    if not form.is_valid():
        return HttpResponse("Invalid filters.", status=400, content_type="text/plain")
    items = selectors.feedback_list(filters=form.filters())
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow([name for name, _ in CSV_COLUMNS])
        for item in items.iterator(chunk_size=500):
            yield writer.writerow([_cell(get(item)) for _, get in CSV_COLUMNS])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="feedback-{stamp}.csv"'
    return response


@require_http_methods(["GET", "POST"])
@staff_required
def create(request: HttpRequest) -> HttpResponse:
    form = FeedbackCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        try:
            item = services.feedback_create(
                actor=Actor.for_user(request.user),
                flag_key=values.pop("flag"),
                source=FeedbackSource.DASHBOARD,
                **values,
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Filed #{item.pk} ({item.get_priority_display()}).")
            return redirect("feedback:detail", pk=item.pk)
    status = 400 if form.errors else 200
    return render(request, "feedback/create.html", {"form": form}, status=status)


def _item_or_404(pk: int) -> FeedbackItem:
    item = selectors.feedback_get(pk=pk)
    if item is None:
        raise Http404(f"No feedback item {pk}.")
    return item


def _summary(event: FeedbackEvent) -> str:
    before, after = event.before or {}, event.after or {}
    kind = FeedbackEvent.Kind
    if event.kind == kind.STATUS:
        original = f" of #{after['duplicate_of']}" if after.get("duplicate_of") else ""
        return f"{before.get('status')} → {after.get('status')}{original}"
    if event.kind == kind.PRIORITY:
        return f"{before.get('priority')} → {after.get('priority')}"
    if event.kind == kind.ASSIGNED:
        return f"{before.get('assignee') or 'nobody'} → {after.get('assignee') or 'nobody'}"
    if event.kind == kind.CREATED:
        return f"priority {after.get('priority')}"
    if event.kind in (kind.EXCLUSION_REQUESTED, kind.UNIT_EXCLUDED):
        return f"{after.get('unit')} on {after.get('flag')}"
    return ""


@require_GET
@staff_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = _item_or_404(pk)
    history = list(item.events.all())
    for event in history:
        event.summary = _summary(event)
    allowed = services.TRANSITIONS[item.status]
    # The outcome of an action is shown in the form that made it (where the redirect scrolled
    # to and the keyboard carries on from); any other message goes at the top of the page.
    outcome, elsewhere = {}, []
    for message in messages.get_messages(request):
        if message.extra_tags in ACTION_FORMS:
            outcome[message.extra_tags.replace("-", "_")] = message
        else:
            elsewhere.append(message)
    return render(
        request,
        "feedback/detail.html",
        {
            "messages": elsewhere,
            "outcome": outcome,
            "item": item,
            "history": history,
            "now": timezone.now(),
            "statuses": [c for c in FeedbackStatus.choices if c[0] in allowed],
            "status_form": StatusForm(),
            "priority_form": PriorityForm(initial={"priority": item.priority}),
            "comment_form": CommentForm(),
            "assignees": selectors.filter_options().assignees,
            "is_release_manager": is_release_manager(request),
        },
    )


ACTION_FORMS = frozenset({"status-form", "priority-form", "assign-form", "comment-form", "exclude"})


def _act(
    request: HttpRequest,
    pk: int,
    form_class: type,
    change: Callable[..., object],
    done: str,
    *,
    anchor: str,
) -> HttpResponse:
    """Validates a small action form, makes one service call, and goes back to the item, to the
    form just used (`anchor`): the next Tab continues from there, not from the top of the page."""
    item = _item_or_404(pk)
    form = form_class(request.POST)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
            for name, errors in form.errors.items()
        )
        messages.error(request, problems, extra_tags=anchor)
    else:
        try:
            change(item=item, actor=Actor.for_user(request.user), **form.cleaned_data)
        except DomainError as exc:
            messages.error(request, exc.message, extra_tags=anchor)
        else:
            messages.success(request, done, extra_tags=anchor)
    return HttpResponseRedirect(f"{reverse('feedback:detail', args=[pk])}#{anchor}")


@require_POST
@staff_required
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    def change(*, item: FeedbackItem, actor: Actor, status: str, duplicate_of: int | None,
               reason: str) -> None:  # fmt: skip
        original = selectors.feedback_get(pk=duplicate_of) if duplicate_of else None
        if duplicate_of and original is None:
            raise DomainError(f"There is no item #{duplicate_of}.")
        services.feedback_transition(
            item=item, status=status, duplicate_of=original, actor=actor, reason=reason
        )

    return _act(request, pk, StatusForm, change, "Status changed.", anchor="status-form")


@require_POST
@staff_required
def change_priority(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        PriorityForm,
        services.feedback_set_priority,
        "Priority changed.",
        anchor="priority-form",
    )


@require_POST
@staff_required
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    def change(*, item: FeedbackItem, actor: Actor, assignee: str) -> None:
        user = None if assignee in ("", UNASSIGNED) else services.staff_user(assignee)
        services.feedback_assign(item=item, assignee=user, actor=actor)

    return _act(request, pk, AssignForm, change, "Assignee changed.", anchor="assign-form")


@require_POST
@staff_required
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request, pk, CommentForm, services.feedback_comment, "Comment added.", anchor="comment-form"
    )


@require_POST
@staff_required
def request_exclusion(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        ReasonForm,
        services.feedback_request_exclusion,
        "Asked the release managers to exclude the unit.",
        anchor="exclude",
    )


@require_POST
@staff_required
def exclude_unit(request: HttpRequest, pk: int) -> HttpResponse:
    if not is_release_manager(request):
        raise PermissionDenied("Only release managers change flags.")
    return _act(
        request,
        pk,
        ReasonForm,
        services.feedback_exclude_unit,
        "The unit is on the flag's exclusion list.",
        anchor="exclude",
    )
