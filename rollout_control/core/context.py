"""Per-request and per-task context that the audit log and the logs read."""

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_task_id() -> str:
    # Imported lazily: core must not pull Celery's app machinery in at import time.
    from celery import current_task

    if current_task and current_task.request and current_task.request.id:
        return str(current_task.request.id)
    return ""


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or current_task_id() or "-"
        return True
