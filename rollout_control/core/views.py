"""Operations endpoints: liveness, readiness and the Prometheus exposition."""

import hmac
import ipaddress
import logging
import os

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from rollout_control.core import metrics as core_metrics

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready"; the message says which
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def _check_broker() -> str | None:
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=2,
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    failures = {"database": _check_database(), "broker": _check_broker()}
    checks = {
        name: ("ok" if error is None else f"error: {error}") for name, error in failures.items()
    }
    failed = [name for name, error in failures.items() if error is not None]
    if failed:
        logger.warning("not ready: %s", checks)
        return JsonResponse(
            {"status": "unavailable", "failed": failed, "checks": checks}, status=503
        )
    return JsonResponse({"status": "ok", "checks": checks})


def _metrics_allowed(request: HttpRequest) -> bool:
    if settings.METRICS_TOKEN:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if hmac.compare_digest(header.encode(), f"Bearer {settings.METRICS_TOKEN}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or any(address in net for net in settings.METRICS_ALLOWED_CIDRS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return HttpResponse(
            "Forbidden: /metrics is readable from allowed networks or with the metrics token.\n",
            status=403,
            content_type="text/plain",
        )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn each worker writes its own files; this sums them.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in core_metrics.extra_collectors:
            registry.register(collector)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


_BENCH_BODY = b'{"key":"bare","value":true,"reason":"STATIC","variant":"on"}'


@csrf_exempt
def bench_constant(request: HttpRequest) -> HttpResponse:
    """A constant JSON body: the floor OFREP is measured against (routed only with BENCH_VIEWS).

    Exempt from CSRF like the OFREP views, so the benchmark can POST the same requests to both."""
    return HttpResponse(_BENCH_BODY, content_type="application/json")
