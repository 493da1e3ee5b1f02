from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from feedback import services
from feedback.models import FeedbackItem
from flags import services as flag_services
from phases import services as phase_services
from phases.models import RolloutPlan
from rollout_control.core.actors import Actor

SYSTEM = Actor.system("test")
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
FLAG = "reports"
PLAN = "Stripboard"
ZERO_CRITICAL = {
    "kind": "feedback",
    "description": "Zero open critical bugs",
    "metric": "feedback_open_critical",
    "comparator": "eq",
    "threshold": 0,
    "window": "7d",
}


@pytest.fixture
def beta_flag(db: None) -> str:
    """Flag `reports`: 50 % for the `beta` cohort (member u-beta), off for everyone else."""
    flag_services.cohort_create(key="beta", name="Beta testers", actor=SYSTEM)
    flag_services.cohort_members_add(key="beta", units=["u-beta", "u-2"], actor=SYSTEM)
    flag_services.flag_create(key=FLAG, actor=SYSTEM)
    flag_services.flag_create(key="other", actor=SYSTEM)
    return FLAG


def make_plan(*, criteria: list[dict[str, Any]] | None = None) -> RolloutPlan:
    definition = {
        "flags": ["f"],
        "cohorts": ["c"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {
                "name": "Closed beta",
                "targets": [{"flag": "f", "cohort": "c", "start": 50, "step": 10, "target": 100}],
                "criteria": criteria if criteria is not None else [ZERO_CRITICAL],
            },
            {
                "name": "Open beta",
                "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}],
            },
        ],
    }
    return phase_services.plan_create(
        name=PLAN, definition=definition, flags={"f": FLAG}, cohorts={"c": "beta"}, actor=SYSTEM
    )


@pytest.fixture
def live_plan(beta_flag: str) -> RolloutPlan:
    plan = make_plan()
    phase_services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    return plan


def file(type: str = "bug", text: str = "It broke", **kwargs: Any) -> FeedbackItem:
    return services.feedback_create(type=type, text=text, actor=SYSTEM, **kwargs)


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    """A local webhook endpoint; what it got is in Receiver.received."""
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
