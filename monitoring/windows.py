"""Time windows written as `30s`, `15m`, `6h`, `7d` (at most 90 days)."""

import re
from datetime import timedelta

from monitoring.exceptions import InvalidQuery

MAX_WINDOW = timedelta(days=90)
_WINDOW = re.compile(r"^\s*(\d{1,7})\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str, *, field: str = "window") -> timedelta:
    match = _WINDOW.match(text or "")
    if match is None:
        raise InvalidQuery("Write a window as a number and s, m, h or d, e.g. 15m.", field=field)
    window = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if window <= timedelta(0):
        raise InvalidQuery("The window must be longer than zero.", field=field)
    if window > MAX_WINDOW:
        raise InvalidQuery("The window may be at most 90 days.", field=field)
    return window


def format_window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
