"""Making a race real rather than hoped for: the first transaction is held just after it has
locked a row, until PostgreSQL shows the second waiting for that lock; only then does the first
go on. Code that read without locking would not wait, and the test would see it."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

LOCK_WAIT_TIMEOUT = 10.0


class HoldAfterLock:
    """An execute wrapper that, once its connection has run a SELECT ... FOR UPDATE, holds that
    transaction open until `release` is set."""

    def __init__(self) -> None:
        self.locked = threading.Event()
        self.release = threading.Event()

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and not self.locked.is_set():
            self.locked.set()
            self.release.wait(LOCK_WAIT_TIMEOUT)
        return result


def waiting_for_lock() -> bool:
    """Some session of this database is waiting for a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
