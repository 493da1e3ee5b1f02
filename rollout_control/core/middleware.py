import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.html import escape

from rollout_control.core import metrics
from rollout_control.core.context import request_id_var
from rollout_control.core.errors import error_body, not_found

logger = logging.getLogger(__name__)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Tags each request with an id (the caller's X-Request-ID if sane) for logs and audit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class DatabaseUnavailableMiddleware:
    """A page whose database work failed (PostgreSQL down, a row lock held past lock_timeout, a
    statement past statement_timeout) answers 503 with Retry-After, not a 500: the API's
    exception handler does the same in JSON (rollout_control/core/errors.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("database unavailable on %s: %s", request.path, exception)
        message = "The database is busy or unavailable; nothing was changed. Try again shortly."
        if request.path.startswith(("/api/", "/ofrep/")):
            response: HttpResponse = JsonResponse(error_body("unavailable", message), status=503)
        else:
            response = HttpResponse(
                "<!doctype html><title>Try again shortly</title><h1>Try again shortly</h1>"
                f"<p>{escape(message)}</p>",
                status=503,
            )
        response["Retry-After"] = "5"
        return response


class RequestMetricsMiddleware:
    """Counts requests by resolved view name, so label cardinality stays bounded."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unmatched"
        metrics.http_requests_total.labels(view, request.method, str(response.status_code)).inc()
        metrics.http_request_duration_seconds.labels(view).observe(time.perf_counter() - started)
        return response


class ApiSlashMiddleware:
    """`/api/v1/flags` works like `/api/v1/flags/` for every method.

    Django's APPEND_SLASH can only redirect, and a client's POST does not survive a redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith("/api/") and not path.endswith("/"):
            urlconf = getattr(request, "urlconf", None)
            try:
                resolve(path, urlconf)
            except Resolver404:
                try:
                    resolve(path + "/", urlconf)
                    request.path_info = path + "/"
                    request.path = request.path + "/"
                except Resolver404:
                    pass
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """Refuses a body larger than MAX_REQUEST_BYTES with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/ofrep/"):
            # OFREP applies its own, smaller limit (OFREP_MAX_BODY_BYTES) in its own error shape.
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit and length > limit:
            body = {
                "error": {
                    "code": "too_large",
                    "message": f"Request bodies are limited to {limit} bytes.",
                    "fields": {},
                }
            }
            return JsonResponse(body, status=413)
        return self.get_response(request)


class NulCharacterMiddleware:
    """A NUL character in the path is a 404, in a query parameter a 400 naming it: no key,
    name or search can hold one (PostgreSQL cannot store or compare it), and letting it reach
    a query was a 500. OFREP is left alone: it looks keys up in the snapshot, never in SQL, and
    answers an unknown key in its own shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith("/ofrep/"):
            return self.get_response(request)
        if "\x00" in path:
            return not_found(request)
        if "%00" in request.META.get("QUERY_STRING", ""):
            names = sorted(
                name for name, values in request.GET.lists() if "\x00" in name + "".join(values)
            )
            if names:
                name = names[0].replace("\x00", "\\0")
                message = f"{name}: No NUL character."
                if path.startswith("/api/"):
                    body = error_body("invalid", message, {name: ["No NUL character."]})
                    return JsonResponse(body, status=400)
                return HttpResponseBadRequest(
                    f"<!doctype html><title>Bad request</title><h1>Bad request</h1>"
                    f"<p>{escape(message)}</p>"
                )
        return self.get_response(request)


class RepeatedQueryParamMiddleware:
    """`?tier=core&tier=x` on the API is a 400 naming `tier`: no API query parameter is a list,
    and quietly taking the last value would hide the other from whoever sent both."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/v1/") and request.META.get("QUERY_STRING"):
            repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1)
            if repeated:
                fields = {name: ["Give this parameter once."] for name in repeated}
                body = error_body("invalid", f"{repeated[0]}: Give this parameter once.", fields)
                return JsonResponse(body, status=400)
        return self.get_response(request)
