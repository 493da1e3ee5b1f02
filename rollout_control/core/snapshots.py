"""In-process, immutable snapshots of configuration, rebuilt when the config version changes.

The request path only reads `store.get(name)`: no SQL, no Redis. A daemon thread per process
checks `ConfigVersion` every POLL_SECONDS and rebuilds every registered snapshot when it moved.
When the database is unreachable the last snapshots keep serving and `store.age()` grows, so
answers can say how stale they are.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# At most one rebuild per this many seconds per process (with the poller thread on), however
# fast writes come: a client opting units in ten times a second cannot make every process
# rebuild ten times a second. A write's own process still sees it at its next read once the
# interval has passed, and every process within POLL_SECONDS after that.
MIN_REBUILD_SECONDS = 0.5


class SnapshotStore:
    def __init__(self) -> None:
        self._builders: dict[str, Callable[[int], Any]] = {}
        self._after_poll: list[Callable[[], None]] = []
        self._on_reset: list[Callable[[], None]] = []
        self._values: dict[str, Any] = {}
        self._version: int | None = None
        self._verified_at = 0.0  # monotonic time of the last successful version check
        self._built_at = 0.0  # monotonic time of the last rebuild
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._dirty = False
        self._failing_since: float | None = None
        self._failing_logged = 0.0
        self.poll_seconds = POLL_SECONDS
        # Tests run without the thread: their uncommitted rows are invisible to its connection.
        self.threaded = True

    def register(self, name: str, builder: Callable[[int], Any]) -> None:
        """`builder(version)` compiles one snapshot from the database."""
        self._builders[name] = builder

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Runs on reset(): builders that keep state between rebuilds forget it."""
        self._on_reset.append(hook)

    def after_poll(self, hook: Callable[[], None]) -> None:
        """Runs in the poller thread after each check (e.g. flushing batched token use)."""
        self._after_poll.append(hook)

    def get(self, name: str) -> Any:
        if self.threaded:
            self._ensure_poller()
        stale = not self.threaded and self.age() > self.poll_seconds
        # With the poller on, a write's rebuild waits out the interval (the poller catches up).
        dirty = self._dirty and (not self.threaded or self._may_rebuild())
        if dirty or stale or name not in self._values:
            force, self._dirty = self._dirty, False
            try:
                self.refresh(force=force)
            except Exception:
                if name not in self._values:
                    raise
                logger.warning("snapshot refresh failed; serving the last one", exc_info=True)
            if not self.threaded:
                self.run_after_poll_hooks()
        return self._values[name]

    def age(self) -> float:
        """Seconds since this process last confirmed its snapshots are current."""
        return max(0.0, time.monotonic() - self._verified_at)

    @property
    def version(self) -> int | None:
        return self._version

    def _may_rebuild(self) -> bool:
        return time.monotonic() - self._built_at >= MIN_REBUILD_SECONDS

    def refresh(self, *, force: bool = False) -> None:
        """Checks the version and rebuilds if it moved (or when forced). Raises on DB errors.
        The poller's refreshes (threaded, not forced) rebuild at most once per
        MIN_REBUILD_SECONDS; a moved version seen sooner is rebuilt at the next poll."""
        with self._lock:
            missing = set(self._builders) - set(self._values)
            if self.threaded and not force and not missing and not self._may_rebuild():
                return
            version = _read_version()
            if force or version != self._version or missing:
                # Built aside and swapped in whole: readers never see a half-built state.
                built = {name: builder(version) for name, builder in self._builders.items()}
                self._values = built
                self._version = version
                self._built_at = time.monotonic()
            self._verified_at = time.monotonic()

    def reset(self) -> None:
        """Forgets every snapshot (tests: each test's database starts over)."""
        with self._lock:
            self._values = {}
            self._version = None
            self._verified_at = 0.0
            self._built_at = 0.0
            for hook in self._on_reset:
                hook()

    def mark_dirty(self) -> None:
        """After a write, this process re-checks at its next read, not up to 0.5 s later.

        Marked now and again on commit: a read in between finds the old version and keeps the old
        snapshot, and the read after the commit finds the new one."""
        self._dirty = True
        transaction.on_commit(self._set_dirty)

    def _set_dirty(self) -> None:
        self._dirty = True

    def _ensure_poller(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # First use in this process (or after a fork): start this process's own poller.
            self._pid = os.getpid()
            threading.Thread(target=self._poll_forever, name="snapshot-poller", daemon=True).start()

    def _poll_forever(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            try:
                self.refresh()
            except Exception as exc:
                # Once per outage (and once a minute while it lasts), not twice a second.
                if self._failing_since is None or time.monotonic() - self._failing_logged > 60:
                    logger.warning(
                        "config version check failing (%s); serving the last snapshot", exc
                    )
                    self._failing_logged = time.monotonic()
                    self._failing_since = self._failing_since or time.monotonic()
                _drop_connection()
            else:
                if self._failing_since is not None:
                    logger.warning(
                        "config version check recovered after %.0f s",
                        time.monotonic() - self._failing_since,
                    )
                    self._failing_since = None
            self.run_after_poll_hooks()
            close_old_connections()

    def run_after_poll_hooks(self) -> None:
        for hook in self._after_poll:
            try:
                hook()
            except Exception:
                logger.warning("snapshot after-poll hook failed", exc_info=True)
                _drop_connection()


def _read_version() -> int:
    from rollout_control.core.models import ConfigVersion

    row = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first()
    return int(row or 0)


def _drop_connection() -> None:
    try:
        connection.close()
    except Exception:  # already broken; the next query opens a new one
        logger.debug("closing a broken connection failed", exc_info=True)


store = SnapshotStore()
