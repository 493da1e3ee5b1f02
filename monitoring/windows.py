"""Time windows written as `30s`, `15m`, `6h`, `7d` (at most 90 days)."""

import re
from datetime import timedelta

from monitoring.exceptions import InvalidQuery

MAX_WINDOW = timedelta(days=90)
_WINDOW = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Exactly what parse_window accepts (1 to 90 days' worth of the unit, no leading zero), for the
# OpenAPI schema; tests/monitoring/test_queries.py checks the two agree.
WINDOW_PATTERN = (
    r"^(?:([1-9]|[1-8][0-9]|90)d"
    r"|([1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    r"|([1-9][0-9]{0,4}|1[01][0-9]{4}|12[0-8][0-9]{3}|129[0-5][0-9]{2}|129600)m"
    r"|([1-9][0-9]{0,5}|[1-6][0-9]{6}|7[0-6][0-9]{5}|77[0-6][0-9]{4}|777[0-5][0-9]{3}|7776000)s)$"
)


def parse_window(text: str, *, field: str = "window") -> timedelta:
    match = _WINDOW.fullmatch(text or "")
    if match is None or (match.group(1).startswith("0") and match.group(1) != "0"):
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
