"""Dashboard forms, and the queue filter form the API's list shares."""

from typing import Any

from django import forms
from django.http import QueryDict

from feedback.models import MAX_TEXT, FeedbackPriority, FeedbackStatus, FeedbackType
from feedback.selectors import OPEN, UNASSIGNED, FeedbackFilters, FilterOptions
from rollout_control.core.filters import StrictBooleanField

ANY = ("", "Any")
STATUS_FILTERS = [ANY, (OPEN, "Open"), *FeedbackStatus.choices]


class SearchInput(forms.TextInput):
    input_type = "search"


class FeedbackFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=SearchInput(attrs={"placeholder": "Text, unit, organisation, flag or #id"}),
    )
    status = forms.ChoiceField(label="Status", choices=STATUS_FILTERS, required=False)
    type = forms.ChoiceField(label="Type", choices=[ANY, *FeedbackType.choices], required=False)
    priority = forms.ChoiceField(
        label="Priority", choices=[ANY, *FeedbackPriority.choices], required=False
    )
    # Free text underneath (the API takes any name); the page shows menus of known values.
    assignee = forms.CharField(label="Assignee", required=False, max_length=150)
    plan = forms.CharField(label="Plan", required=False, max_length=200)
    phase = forms.CharField(label="Phase", required=False, max_length=100)
    flag = forms.CharField(label="Flag", required=False, max_length=100)
    unit = forms.CharField(label="Unit", required=False, max_length=200)
    overdue = forms.BooleanField(label="Overdue only", required=False)

    def __init__(
        self, data: QueryDict | dict[str, Any] | None, *, options: FilterOptions | None = None
    ) -> None:
        super().__init__(data, label_suffix="")
        if options is None:
            return
        menus = {
            "assignee": [("", "Anyone"), (UNASSIGNED, "Nobody"), *_pairs(options.assignees)],
            "plan": [ANY, *_pairs(options.plans)],
            "phase": [ANY, *_pairs(options.phases)],
            "flag": [ANY, *_pairs(options.flags)],
        }
        for name, choices in menus.items():
            current = (self.data.get(name) or "") if self.data else ""
            if current and current not in dict(choices):
                choices.append((current, current))  # keep a filter from a shared link visible
            self.fields[name].widget = forms.Select(choices=choices)

    def filters(self) -> FeedbackFilters:
        return FeedbackFilters(**self.cleaned_data)


class FeedbackQueryForm(FeedbackFilterForm):
    """The queue filter as the API reads it: `overdue` is a JSON-style boolean (true/false/1/0),
    not a checkbox that counts any value as ticked."""

    overdue = StrictBooleanField(required=False)

    def clean_overdue(self) -> bool:
        return bool(self.cleaned_data.get("overdue"))


def _pairs(values: list[str]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class FeedbackCreateForm(forms.Form):
    """Staff filing feedback from the dashboard (a phone call, an e-mail, a meeting)."""

    type = forms.ChoiceField(label="Type", choices=FeedbackType.choices)
    text = forms.CharField(
        label="What happened",
        max_length=MAX_TEXT,
        strip=False,  # stored as typed: indented steps and pasted logs keep their shape
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    rating = forms.TypedChoiceField(
        label="Rating (optional)",
        choices=[("", "No rating"), *[(str(n), f"{n} / 5") for n in range(1, 6)]],
        coerce=int,
        empty_value=None,
        required=False,
    )
    flag = forms.CharField(label="Flag key (optional)", max_length=100, required=False)
    unit = forms.CharField(label="Unit (user id, optional)", max_length=200, required=False)
    org = forms.CharField(label="Organisation (optional)", max_length=200, required=False)
    app_version = forms.CharField(label="App version (optional)", max_length=50, required=False)


class StatusForm(forms.Form):
    status = forms.ChoiceField(label="New status", choices=FeedbackStatus.choices)
    duplicate_of = forms.IntegerField(
        label="Original item (for duplicates)", min_value=1, required=False
    )
    reason = forms.CharField(label="Note (optional)", max_length=2000, required=False)


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(label="Priority", choices=FeedbackPriority.choices)
    reason = forms.CharField(label="Why", max_length=2000)


class AssignForm(forms.Form):
    assignee = forms.CharField(label="Assignee", max_length=150, required=False)


class CommentForm(forms.Form):
    text = forms.CharField(
        label="Internal comment",
        max_length=MAX_TEXT,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason (optional)", max_length=2000, required=False)


class BulkForm(forms.Form):
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    action = forms.ChoiceField(choices=[("assign", "Assign"), ("status", "Change status")])
    assignee = forms.CharField(max_length=150, required=False)
    status = forms.ChoiceField(choices=[ANY, *FeedbackStatus.choices], required=False)

    def __init__(self, data: QueryDict) -> None:
        super().__init__(data)
        # Any id is acceptable here; the service reports the ones that no longer exist.
        self.fields["ids"].choices = [(value, value) for value in data.getlist("ids")]
        self.fields["ids"].error_messages["required"] = "Tick at least one item."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("action") == "status" and not data.get("status"):
            self.add_error("status", "Choose the new status.")
        return data
