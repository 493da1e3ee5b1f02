"""The query strings of the flag and cohort lists (rollout_control.core.filters)."""

import django_filters
from django.db.models import Q, QuerySet

from flags.models import Flag
from rollout_control.core.filters import BooleanFilter, ChoiceFilter

SEARCH_MAX = 200


class FlagFilter(django_filters.FilterSet):
    archived = BooleanFilter(field_name="archived")
    tier = ChoiceFilter(field_name="tier", choices=Flag.Tier.choices)
    search = django_filters.CharFilter(method="_search", max_length=SEARCH_MAX)

    def _search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class CohortFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="_search", max_length=SEARCH_MAX)

    def _search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(key__icontains=value) | Q(name__icontains=value))
