import json
from decimal import Decimal
from typing import Any

from django import forms

from phases.models import Decision

CONTEXT_HELP = 'A JSON object, e.g. {"targetingKey": "user-42", "plan": "pro"}.'


def _json_object(text: str, *, required: bool) -> dict[str, Any]:
    if not text.strip():
        if required:
            raise forms.ValidationError("Enter a JSON object.")
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
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


class PercentageForm(forms.Form):
    rule = forms.CharField(max_length=100, help_text='"default" or a cohort key.')
    percentage = forms.DecimalField(min_value=Decimal(0), max_value=Decimal(100), decimal_places=2)
    reason = forms.CharField(max_length=2000, strip=True, required=False)


class KillSwitchForm(forms.Form):
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
