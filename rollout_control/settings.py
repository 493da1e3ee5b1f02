"""Settings, read from the environment (see .env.example for every variable).

Two modes. `production` (the default) refuses to start without SECRET_KEY and DATABASE_URL and
turns every deploy check on. `development` (what the quickstart uses) turns DEBUG on, generates a
local secret and runs on an embedded default: SQLite and a filesystem broker, no servers needed.
"""

import ipaddress
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from rollout_control.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ROLLOUT_VAR_DIR") or BASE_DIR / "var")

MODE = env_choice("ROLLOUT_MODE", "production", ("production", "development"))
DEVELOPMENT = MODE == "development"
DEBUG = env_bool("DEBUG", DEVELOPMENT)


def _development_secret() -> str:
    # Generated once per checkout so sessions survive a restart of the quickstart.
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEVELOPMENT:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production mode (the default) needs SECRET_KEY and "
            "DATABASE_URL; set ROLLOUT_MODE=development for a local run."
        )
    SECRET_KEY = _development_secret()

_database_url = env_str("DATABASE_URL") or ""
if not _database_url:
    if not DEVELOPMENT:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set. Production mode (the default) needs SECRET_KEY and "
            "DATABASE_URL; set ROLLOUT_MODE=development for a local run."
        )
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _database_url = f"sqlite:///{VAR_DIR / 'dev.sqlite3'}"

DATABASE_LOCK_TIMEOUT = env_int("DATABASE_LOCK_TIMEOUT", 5, minimum=0)
DATABASE_STATEMENT_TIMEOUT = env_int("DATABASE_STATEMENT_TIMEOUT", 15, minimum=0)
DATABASE_TASK_STATEMENT_TIMEOUT = env_int("DATABASE_TASK_STATEMENT_TIMEOUT", 300, minimum=0)


def postgres_timeouts(lock_seconds: int, statement_seconds: int) -> str:
    """libpq `options` setting PostgreSQL's lock and statement timeouts for every session."""
    return f"-c lock_timeout={lock_seconds}s -c statement_timeout={statement_seconds}s"


DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers and one writer proceed together.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A frozen database must fail a request in seconds, not hang it until gunicorn kills it.
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 3, minimum=1),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        # A row lock held elsewhere or a runaway query: the request fails (503, Retry-After)
        # in seconds instead of hanging until gunicorn kills the worker. 0 turns either off
        # (e.g. DATABASE_STATEMENT_TIMEOUT=0 for a long migration); Celery workers use
        # DATABASE_TASK_STATEMENT_TIMEOUT instead (rollout_control/celery.py).
        "options": postgres_timeouts(DATABASE_LOCK_TIMEOUT, DATABASE_STATEMENT_TIMEOUT),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL") or ""
if REDIS_URL:
    CACHES = {
        "default": {
            # Errors are logged, not raised: a committed write never fails on the cache.
            "BACKEND": "rollout_control.core.cache.TolerantRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rc",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
elif DEVELOPMENT:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured("REDIS_URL is not set; production mode needs Redis for the cache.")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEVELOPMENT else []
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is empty; list the host names this service answers.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "corsheaders",
    "axes",
    "waffle",
    "rollout_control.core",
    "flags",
    "monitoring",
    "phases",
    "feedback",
    "rollout_control.dashboard",
]

MIDDLEWARE = [
    "rollout_control.core.middleware.RequestIdMiddleware",
    "rollout_control.core.middleware.BodySizeLimitMiddleware",
    "rollout_control.core.middleware.NulCharacterMiddleware",
    "rollout_control.core.middleware.RequestMetricsMiddleware",
    "rollout_control.core.middleware.ApiSlashMiddleware",
    "rollout_control.core.middleware.RepeatedQueryParamMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last, so its process_exception sees a view's database error first.
    "rollout_control.core.middleware.DatabaseUnavailableMiddleware",
]

# Content-Security-Policy (django-csp): scripts only from our own static files, never inline
# (the pages are browser-tested, so a violation is a console error that fails a test). Inline
# style attributes stay allowed: the progress bars set their width with one.
CONTENT_SECURITY_POLICY = {
    # JSON endpoints render nothing; evaluation is the hot path.
    "EXCLUDE_URL_PREFIXES": ["/ofrep/", "/api/v1/", "/metrics", "/healthz", "/readyz"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "rollout_control.urls"
WSGI_APPLICATION = "rollout_control.wsgi.application"
ASGI_APPLICATION = "rollout_control.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

# django-axes: lock a username+address pair out after repeated failures; lockouts are logged.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0, minimum=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Security: every `check --deploy` item is on in production; development relaxes TLS only.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEVELOPMENT)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEVELOPMENT else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEVELOPMENT)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEVELOPMENT)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEVELOPMENT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEVELOPMENT)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1024)
# OFREP bodies are a context, a few hundred bytes: a larger one is refused (413) unread.
OFREP_MAX_BODY_BYTES = env_int("OFREP_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
if OFREP_MAX_BODY_BYTES > DATA_UPLOAD_MAX_MEMORY_SIZE:
    raise ImproperlyConfigured("OFREP_MAX_BODY_BYTES must not exceed MAX_REQUEST_BYTES.")

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/(ofrep|api)/.*$"
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "if-none-match",
    "if-match",
    "x-api-key",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = ["etag", "retry-after"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rollout_control.core.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rollout_control.core.permissions.IsReleaseManager"],
    # The API speaks JSON only: form encodings cannot carry its nested inputs (cohort rules,
    # slot maps) or tell a number from a string, so a form body is a 415, not a guess.
    # Ours refuses nesting deeper than 32 and lone surrogates (rollout_control/core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["rollout_control.core.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rollout_control.core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_SCHEMA_CLASS": "rollout_control.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "rollout_control.core.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rollout control plane API",
    "DESCRIPTION": (
        "Feature flags, phased rollouts, guardrails and beta feedback. Authenticate with "
        "`Authorization: Bearer <token>` or `X-API-Key: <token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the machine running this may have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PlanStatusEnum": "phases.models.RolloutPlan.Status",
        "PhaseStatusEnum": "phases.models.Phase.Status",
        "MetricStatusEnum": ["ok", "insufficient_data", "error"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "flags.schema.add_ofrep_paths",
        "monitoring.schema.document_batches",
        "rollout_control.core.schema.add_error_responses",
    ],
}

# Celery: the broker defaults to Redis; the quickstart falls back to a filesystem broker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if not CELERY_BROKER_URL:
    if not DEVELOPMENT:
        raise ImproperlyConfigured("CELERY_BROKER_URL (or REDIS_URL) is not set.")
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # kombu's exchange and pidbox files (default: ./control, in whatever folder it runs).
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE") or "rollout_control"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "rollout_control.scheduler:Scheduler"

PROMETHEUS_URL = env_str("PROMETHEUS_URL") or ""
METRICS_ALLOWED_CIDRS = []
for _cidr in env_list("METRICS_ALLOWED_CIDRS", []):
    try:
        METRICS_ALLOWED_CIDRS.append(ipaddress.ip_network(_cidr, strict=False))
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_CIDRS: {_cidr!r} is not a network") from None
METRICS_TOKEN = env_str("METRICS_TOKEN") or ""

# Webhooks go to public addresses only (rollout_control/core/outbound.py); these networks are
# allowed as well, e.g. a receiver on the LAN (comma-separated CIDRs; default none).
WEBHOOK_ALLOWED_NETWORKS = []
for _cidr in env_list("WEBHOOK_ALLOWED_NETWORKS", []):
    try:
        WEBHOOK_ALLOWED_NETWORKS.append(ipaddress.ip_network(_cidr, strict=False))
    except ValueError:
        raise ImproperlyConfigured(
            f"WEBHOOK_ALLOWED_NETWORKS: {_cidr!r} is not a network"
        ) from None

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEVELOPMENT
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
# Seconds: a mail server that hangs must not hold a send past the outbox's claim on it.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "rollouts@localhost")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "rollout_control.core.context.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "axes": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}

# django-waffle runs on our flag model; its own admin is replaced by ours (flags/admin.py).
WAFFLE_FLAG_MODEL = "flags.Flag"
WAFFLE_CREATE_MISSING_FLAGS = False
WAFFLE_FLAG_DEFAULT = False
# waffle's own first migration creates its Flag table even when the model is swapped, and that
# table's foreign keys then block `flush` (django-waffle issues 317 and 338). Ours create only the
# Switch and Sample tables.
MIGRATION_MODULES = {"waffle": "flags.waffle_migrations"}

# Each process polls the config version from a background thread (see core/snapshots.py).
SNAPSHOT_POLLER_THREAD = env_bool("SNAPSHOT_POLLER_THREAD", True)

# Evaluation requests per second per client token, per web process (0 turns the limit off).
CLIENT_RATE_LIMIT = env_int("CLIENT_RATE_LIMIT", 1000, minimum=0)
CLIENT_RATE_BURST = env_int("CLIENT_RATE_BURST", 2000, minimum=1)
# Opt-ins change the configuration every process serves: bounded per token and per unit.
OPT_IN_RATE_PER_TOKEN = env_int("OPT_IN_RATE_PER_TOKEN", 20, minimum=0)  # per second; 0: off
OPT_IN_RATE_PER_UNIT = env_int("OPT_IN_RATE_PER_UNIT", 6, minimum=0)  # per minute; 0: off

# Routes /bench/constant, the bare view tests/bench/bench_ofrep.py compares OFREP against.
BENCH_VIEWS = env_bool("BENCH_VIEWS", False)

# Monitoring retention: raw samples (at least 7 days, the dashboard charts them), then hourly
# rollups; usage events. Pruned by the hourly `monitoring.tasks.compact` beat task.
METRICS_RAW_RETENTION_DAYS = env_int("METRICS_RAW_RETENTION_DAYS", 7, minimum=7)
METRICS_ROLLUP_RETENTION_DAYS = env_int("METRICS_ROLLUP_RETENTION_DAYS", 90, minimum=7)
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 90, minimum=7)
METRICS_MAX_BATCH = env_int("METRICS_MAX_BATCH", 10_000, minimum=1)
# Largest magnitude a metric sample may have (an integer: 10**12 by default). Larger, NaN or
# infinite values are refused; window queries clamp stored values to it, so they cannot overflow.
METRICS_MAX_ABS_VALUE = env_int("METRICS_MAX_ABS_VALUE", 10**12, minimum=1)

# Who hears about rollouts: decisions, incidents and critical feedback go to the team; kickoff
# messages to each phase's cohort contacts are signed with these details.
TEAM_EMAILS = env_list("TEAM_EMAILS", [])
TEAM_NAME = env_str("TEAM_NAME", "The release team")
SUPPORT_CONTACT = env_str("SUPPORT_CONTACT", "support@localhost")
SUPPORT_HOURS = env_str("SUPPORT_HOURS", "Monday to Friday, 9:00-17:00")

# Guardrails are checked once per interval (beat's "check guardrails" entry should match).
GUARDRAIL_INTERVAL_SECONDS = env_int("GUARDRAIL_INTERVAL_SECONDS", 60, minimum=1)

# Feedback intake: submissions per reporting unit, per web process (an hourly rate and a burst).
FEEDBACK_RATE_PER_HOUR = env_int("FEEDBACK_RATE_PER_HOUR", 60, minimum=1)
FEEDBACK_RATE_BURST = env_int("FEEDBACK_RATE_BURST", 10, minimum=1)
# ... and per client token (every unit of one app together; rotating `unit` values do not
# escape it).
FEEDBACK_TOKEN_RATE_PER_HOUR = env_int("FEEDBACK_TOKEN_RATE_PER_HOUR", 300, minimum=1)
FEEDBACK_TOKEN_RATE_BURST = env_int("FEEDBACK_TOKEN_RATE_BURST", 20, minimum=1)
# At most one immediate alert per flag and priority per this many minutes; items arriving
# meanwhile go out as one digest when the window ends (0 = alert for every item).
FEEDBACK_ALERT_WINDOW_MINUTES = env_int("FEEDBACK_ALERT_WINDOW_MINUTES", 5, minimum=0)
# feedback_satisfaction has data from this many distinct rating units (each one's latest rating).
SATISFACTION_MIN_UNITS = env_int("SATISFACTION_MIN_UNITS", 5, minimum=1)
# One named enum per feedback choice set in the OpenAPI schema (several serializers share them).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] |= {
    "FeedbackStatusEnum": "feedback.models.FeedbackStatus",
    "FeedbackPriorityEnum": "feedback.models.FeedbackPriority",
    "FeedbackTypeEnum": "feedback.models.FeedbackType",
    "FeedbackSourceEnum": "feedback.models.FeedbackSource",
}
