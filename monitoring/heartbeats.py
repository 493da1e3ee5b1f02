"""Heartbeats that matter only while something needs them, registered at start-up by the app
that records them (as metric providers are), so that monitoring never imports that app.

Phases registers the guardrail checks: each completed run records a `guardrails` heartbeat, and
the checks count as stalled after three guardrail intervals, but only while a live plan has
guardrails in force (a fresh install with no plans has nothing to check).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Watch:
    label: str
    # Both are called at check time: settings (the interval) and the plans change while running.
    stall_after: Callable[[], timedelta]
    needed: Callable[[], bool]


_watches: dict[str, Watch] = {}


def heartbeat_watch(
    *,
    component: str,
    label: str,
    stall_after: Callable[[], timedelta],
    needed: Callable[[], bool],
) -> None:
    """Registers `component`: stalled when not seen for `stall_after()` while `needed()`."""
    _watches[component] = Watch(label=label, stall_after=stall_after, needed=needed)


def watches() -> dict[str, Watch]:
    return dict(_watches)
