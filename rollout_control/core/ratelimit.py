"""Per-client rate limits, kept in process memory so the request path needs no Redis.

Each process enforces the limit on its own share of the traffic: with N web workers a client can
reach N times the configured rate. That is the price of no network round trip per request.
"""

import math
import threading
import time


class TokenBucket:
    max_keys = 50_000  # past this many tracked clients, forget those that have refilled

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[object, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled says nothing a new one would not: drop it (bounded memory).
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.burst
        }

    def take(self, key: object) -> float:
        """0 when allowed, else the seconds to wait before the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
