"""The query string of the plan list (rollout_control.core.filters)."""

import django_filters

from phases.models import RolloutPlan
from rollout_control.core.filters import ChoiceFilter


class PlanFilter(django_filters.FilterSet):
    status = ChoiceFilter(field_name="status", choices=RolloutPlan.Status.choices)
