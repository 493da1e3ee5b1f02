"""Prometheus collectors for flags, named rollout_control_flag_<thing>_<unit>.

Evaluations are tallied in process memory and added to `flag_evaluations_total` by a daemon thread
every FLUSH_SECONDS (and at exit). Under gunicorn each `.labels(...).inc()` is a lookup plus a
locked write to a memory-mapped file; a bulk OFREP request would make fifty of them, which costs
more than evaluating the fifty flags. Batched, a request pays one lock and a few dict updates, and
/metrics lags by at most FLUSH_SECONDS.
"""

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterable

from prometheus_client import Counter

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25

# (flag, variant, reason): the labels of flag_evaluations_total, in that order.
Outcome = tuple[str, str, str]

flag_evaluations_total = Counter(
    "rollout_control_flag_evaluations_total",
    "Flag evaluations served, by flag, variant and reason.",
    ["flag", "variant", "reason"],
)
rate_limited_total = Counter(
    "rollout_control_flag_rate_limited_total",
    "Evaluation requests refused with 429.",
)


class EvaluationTally:
    """Counts outcomes in memory; `flush()` moves them into the Prometheus counter."""

    def __init__(self, counter: Counter, *, interval: float) -> None:
        self._counter = counter
        self._interval = interval
        self._after_fork()
        os.register_at_fork(after_in_child=self._after_fork)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        if not self._flushing:
            self._start_flusher()
        with self._lock:
            pending = self._pending
            for outcome in outcomes:
                pending[outcome] = pending.get(outcome, 0) + 1

    def flush(self) -> int:
        """Adds what was tallied to the counter; returns how many evaluations that was."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (flag, variant, reason), count in pending.items():
            self._counter.labels(flag, variant, reason).inc(count)
        return sum(pending.values())

    def _after_fork(self) -> None:
        # What the parent had tallied is the parent's to flush; its locks may have been held by
        # a thread that did not come along, and its flusher thread did not either.
        self._pending: dict[Outcome, int] = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._flushing = False

    def _start_flusher(self) -> None:
        with self._start_lock:
            if self._flushing:
                return
            threading.Thread(
                target=self._flush_forever, name="evaluation-tally", daemon=True
            ).start()
            self._flushing = True

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self._interval)
            try:
                self.flush()
            except Exception:  # e.g. the multiprocess directory vanished; keep the thread alive
                logger.warning("flushing evaluation counts failed", exc_info=True)


evaluations = EvaluationTally(flag_evaluations_total, interval=FLUSH_SECONDS)
atexit.register(evaluations.flush)


def count_evaluations(outcomes: Iterable[Outcome]) -> None:
    """Counts each outcome in `flag_evaluations_total` (visible within FLUSH_SECONDS)."""
    evaluations.add(outcomes)
