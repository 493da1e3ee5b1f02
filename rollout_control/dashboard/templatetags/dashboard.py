"""Template helpers for the dashboard: percentages, audit values, and links to the feedback
queue (its own app; the links work before it is installed, see feedback_url)."""

import json
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse

from rollout_control.dashboard.selectors import percent as _percent

register = template.Library()

FEEDBACK_QUEUE = "feedback:queue"
FEEDBACK_FALLBACK = "/feedback/"


def _queue_url() -> str | None:
    try:
        return reverse(FEEDBACK_QUEUE)
    except NoReverseMatch:
        return None


@register.simple_tag
def feedback_installed() -> bool:
    return _queue_url() is not None


@register.simple_tag
def feedback_url(**filters: Any) -> str:
    """The feedback queue filtered by unit, plan or flag. Until the feedback app routes its
    queue, the link points at where it will be."""
    base = _queue_url() or FEEDBACK_FALLBACK
    query = urlencode({name: value for name, value in filters.items() if value not in (None, "")})
    return f"{base}?{query}" if query else base


@register.filter
def percent(basis_points: int | None) -> str:
    return _percent(basis_points)


@register.filter
def audit_value(value: Any) -> str:
    """An audit before/after value, compact: strings as they are, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@register.filter
def humanize_key(value: str) -> str:
    return str(value).replace("_", " ")
