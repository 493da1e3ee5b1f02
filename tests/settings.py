"""Settings for the test suite: development mode on the real local PostgreSQL and Redis.

Every default can be overridden from the environment (scripts/test exports the same ones).
"""

import os

os.environ.setdefault("ROLLOUT_MODE", "development")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollout_control")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
# Many tests opt the same unit in and out as several principals; the per-unit limit has its own
# tests (tests/flags/test_snapshot_rebuilds.py), which set their own limiter.
os.environ.setdefault("OPT_IN_RATE_PER_UNIT", "6000")
# The suite's webhook receivers listen on loopback, as an operator's LAN receiver would be
# allowed; tests of the refusal override it (tests/core/test_webhook_targets.py).
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")

from rollout_control.settings import *  # noqa: F403

# Hashing passwords slowly buys nothing in tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Test transactions are invisible to a second connection, so snapshots refresh inline instead.
SNAPSHOT_POLLER_THREAD = env_bool("SNAPSHOT_POLLER_THREAD", False)  # noqa: F405

# One test database per pytest process: several runs (a developer's and a helper's, say) on one
# machine must not share or drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405

# Child processes (gunicorn, worker, beat started by tests) get both back on: see
# tests/processes.py child_env.
# Tasks enqueued by services run in-process (the real task functions against the real database);
# the broker path is covered by tests that start a real worker and send tasks by name.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)  # noqa: F405
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
TEAM_EMAILS = ["releases@example.com"]
