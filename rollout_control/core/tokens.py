"""API tokens as the request path sees them: from the in-process snapshot, no SQL per request.

Use is recorded in memory and written in batches (one UPDATE per token at most once a minute per
process), from the snapshot poller thread.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from rollout_control.core.models import ApiToken
from rollout_control.core.selectors import token_hash
from rollout_control.core.snapshots import store

FLUSH_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class TokenSnap:
    pk: int
    name: str
    scope: str
    user_id: int | None
    expires_at: datetime | None
    revoked: bool
    username: str = ""
    # The tied user's is_active when the snapshot was built (True for untied tokens). Services
    # that deactivate someone revoke their tokens and bump the config version, so every process
    # stops accepting them within a poll; this flag covers a deactivation made any other way.
    user_active: bool = True

    @property
    def is_admin(self) -> bool:
        return self.scope == ApiToken.Scope.ADMIN

    @property
    def is_ingest(self) -> bool:
        return self.scope == ApiToken.Scope.INGEST

    def is_usable(self, at: datetime) -> bool:
        if self.revoked or not self.user_active:
            return False
        return self.expires_at is None or self.expires_at > at


def build_token_snapshot(version: int) -> dict[str, TokenSnap]:
    rows = ApiToken.objects.filter(revoked_at__isnull=True).values_list(
        "key_hash", "pk", "name", "scope", "user_id", "expires_at", "user__username",
        "user__is_active",
    )  # fmt: skip
    return {
        key_hash: TokenSnap(
            pk=pk,
            name=name,
            scope=scope,
            user_id=user_id,
            expires_at=expires_at,
            revoked=False,
            username=username or "",
            user_active=user_id is None or bool(active),
        )
        for key_hash, pk, name, scope, user_id, expires_at, username, active in rows
    }


def token_lookup(raw: str) -> TokenSnap | None:
    """The live token for a raw secret, or None when unknown, expired or revoked."""
    token = store.get("tokens").get(token_hash(raw))
    if token is None:
        return None
    now = timezone.now()
    if not token.is_usable(now):
        return None
    _usage.record(token.pk, now)
    return token


class _UsageBatch:
    def __init__(self) -> None:
        self._seen: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._flushed_at = 0.0

    def record(self, token_id: int, used_at: datetime) -> None:
        # A dict store is atomic under the GIL; the lock is only for the swap in flush().
        self._seen[token_id] = used_at

    def flush(self, *, force: bool = False) -> int:
        if not force and time.monotonic() - self._flushed_at < FLUSH_SECONDS:
            return 0
        with self._lock:
            seen, self._seen = self._seen, {}
            self._flushed_at = time.monotonic()
        pending = dict(seen)
        try:
            for token_id, used_at in seen.items():
                ApiToken.objects.filter(pk=token_id).exclude(last_used_at__gte=used_at).update(
                    last_used_at=used_at
                )
                del pending[token_id]
        except DatabaseError:
            # The database is down: keep what was not written for the next flush (newest wins).
            with self._lock:
                for token_id, used_at in pending.items():
                    newer = self._seen.get(token_id)
                    self._seen[token_id] = max(used_at, newer) if newer else used_at
            raise
        return len(seen)


_usage = _UsageBatch()


def flush_token_usage(*, force: bool = False) -> int:
    return _usage.flush(force=force)


store.register("tokens", build_token_snapshot)
store.after_poll(flush_token_usage)
