"""Query-string filters for API lists, validated by django-filter: a value a filter cannot take is
a 400 naming the parameter (never quietly no filter at all)."""

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
_NOT_A_BOOLEAN = "Must be true or false (or 1 or 0)."


def _boolean(value: str) -> bool | None:
    """True or False for the spellings we accept, None for anything else."""
    return True if value in TRUE else False if value in FALSE else None


def parse_bool(value: str | None, *, field: str, default: bool = False) -> bool:
    if value is None:
        return default
    parsed = _boolean(value)
    if parsed is None:
        raise ValidationError({field: [_NOT_A_BOOLEAN]})
    return parsed


class StrictBooleanField(forms.Field):
    """true/false/1/0. django-filter's own boolean filter reads anything else, an empty value
    included, as "not given"."""

    def to_python(self, value: Any) -> bool | None:
        if value is None:
            return None
        parsed = _boolean(value)
        if parsed is None:
            raise forms.ValidationError(_NOT_A_BOOLEAN, code="invalid")
        return parsed


class StrictChoiceField(forms.ChoiceField):
    """One of the choices when given; an empty value is not "any"."""

    def to_python(self, value: Any) -> str | None:
        return None if value is None else str(value)

    def validate(self, value: Any) -> None:
        if value is not None and not self.valid_value(value):
            choices = ", ".join(str(key) for key, _ in self.choices if key != "")
            raise forms.ValidationError(f"Must be one of {choices}.", code="invalid_choice")


class BooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class ChoiceFilter(django_filters.Filter):
    """Takes `choices=`, like django-filter's, but without its empty "any" choice."""

    field_class = StrictChoiceField


def filtered(
    filterset_class: type[django_filters.FilterSet],
    request: Request,
    queryset: QuerySet,
    *,
    defaults: dict[str, str] | None = None,
) -> QuerySet:
    """`queryset` narrowed by the request's query string, or ValidationError (400) per field."""
    data: QueryDict = request.query_params.copy()
    for name, value in (defaults or {}).items():
        data.setdefault(name, value)
    filterset = filterset_class(data, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs
