import json
from decimal import Decimal
from typing import Any

from django import forms

from phases.models import Decision
from rollout_control.core.parsers import loads

CONTEXT_HELP = 'A JSON object, e.g. {"targetingKey": "user-42", "plan": "pro"}.'


def _json_object(text: str, *, required: bool) -> dict[str, Any]:
    if not text.strip():
        if required:
            raise forms.ValidationError("Enter a JSON object.")
        return {}
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    except ValueError as exc:  # nested too deep, a lone surrogate (it would crash the hash), NaN
        raise forms.ValidationError(f"Not usable: {exc}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("Enter a JSON object ({...}), not a list or a single value.")
    return value


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True, required=False)


class SignOffForm(forms.Form):
    comment = forms.CharField(max_length=2000, strip=True, required=False)


class ChecklistForm(forms.Form):
    item = forms.IntegerField(min_value=1)
    ticked = forms.BooleanField(required=False)


class DecisionForm(forms.Form):
    kind = forms.ChoiceField(choices=Decision.Kind.choices)
    comment = forms.CharField(max_length=2000, strip=True, required=False)
    override_reason = forms.CharField(max_length=2000, strip=True, required=False)


class VersionedForm(forms.Form):
    """A change form carries the version of the object it was read at: a stale one is refused
    (the service compares it under the row lock) instead of overwriting a newer change."""

    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class PercentageForm(VersionedForm):
    rule = forms.CharField(max_length=100, help_text='"default" or a cohort key.')
    percentage = forms.DecimalField(min_value=Decimal(0), max_value=Decimal(100), decimal_places=2)
    reason = forms.CharField(max_length=2000, strip=True, required=False)


class KillSwitchForm(VersionedForm):
    killed = forms.TypedChoiceField(
        choices=[("on", "on"), ("off", "off")], coerce=lambda value: value == "on"
    )
    reason = forms.CharField(max_length=2000, strip=True)


class EvaluateForm(forms.Form):
    context = forms.CharField(max_length=20_000, help_text=CONTEXT_HELP)

    def clean_context(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["context"], required=True)


class UnitForm(forms.Form):
    KINDS = [("user", "User (targetingKey)"), ("org", "Organisation (orgId)")]

    unit = forms.CharField(max_length=200, strip=True)
    kind = forms.ChoiceField(choices=KINDS, initial="user", widget=forms.RadioSelect)
    extra = forms.CharField(max_length=20_000, required=False, help_text=CONTEXT_HELP)

    def clean_extra(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data.get("extra", ""), required=False)

    def context(self) -> dict[str, Any]:
        data = self.cleaned_data
        attribute = "orgId" if data["kind"] == "org" else "targetingKey"
        return {**data["extra"], attribute: data["unit"]}
