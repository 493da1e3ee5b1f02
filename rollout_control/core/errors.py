"""The one error shape for the API: {"error": {"code", "message", "fields"}}."""

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from psycopg.errors import LockNotAvailable, QueryCanceled
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from rollout_control.core.exceptions import DomainError

logger = logging.getLogger(__name__)


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turns DRF's nested error detail into {"field.sub": ["message", ...]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # DRF reports list items by index
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            if item:
                out.update(_flatten(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def _validation_response(exc: exceptions.ValidationError) -> Response:
    fields = _flatten(exc.detail)
    first_field, messages = next(iter(fields.items()), ("", ["Invalid input."]))
    message = messages[0] if first_field == "non_field_errors" else f"{first_field}: {messages[0]}"
    return Response(error_body("invalid", message, fields), status=status.HTTP_400_BAD_REQUEST)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        fields = getattr(exc, "fields", None) or ({exc.field: [exc.message]} if exc.field else {})
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return Response(error_body(exc.code, message, fields), status=exc.status_code)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("database unavailable: %s", exc)
        # lock_timeout / statement_timeout (settings DATABASE_*_TIMEOUT): the database answered,
        # but a row this write needs is locked elsewhere or the statement ran too long.
        busy = isinstance(exc.__cause__, LockNotAvailable | QueryCanceled)
        message = (
            "The database is busy (a lock held elsewhere or a slow query); nothing was "
            "changed; try again shortly."
            if busy
            else "The database is unavailable; try again shortly."
        )
        return Response(
            error_body("unavailable", message),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # What curl sends for `-d` without a header (a form encoding): say what to do instead.
        message = f"{exc.detail} Send JSON with the header 'Content-Type: application/json'."
        return Response(error_body("unsupported_media_type", message), status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if not isinstance(code, str):
        code = "error"
    message = detail if isinstance(detail, str) else "Request failed."
    response.data = error_body(code, str(message))
    return response


CHOICES_LISTED = 12  # past this many (time zones), the message points at the schema instead


def choices_message(value: Any, choices: list[str]) -> str:
    listed = ", ".join(choices[:CHOICES_LISTED])
    if len(choices) > CHOICES_LISTED:
        listed += f", … ({len(choices)} in all; see /api/schema/)"
    return f'"{value}" is not a valid choice; choose one of: {listed}.'


def list_valid_choices() -> None:
    """Every API choice field's "not a valid choice" also says which are (DRF names only the
    value sent). Installed once, from CoreConfig.ready, so every serializer gets it."""
    original = serializers.ChoiceField.to_internal_value
    if getattr(original, "lists_choices", False):
        return

    def to_internal_value(self: serializers.ChoiceField, data: Any) -> Any:
        try:
            return original(self, data)
        except exceptions.ValidationError as exc:
            if exc.get_codes() != ["invalid_choice"]:
                raise
            valid = [str(key) for key in self.choices]
            raise exceptions.ValidationError(
                choices_message(data, valid), code="invalid_choice"
            ) from None

    to_internal_value.lists_choices = True  # type: ignore[attr-defined]
    serializers.ChoiceField.to_internal_value = to_internal_value  # type: ignore[method-assign]


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/ofrep/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            error_body("not_found", f"No such resource: {request.path}"), status=404
        )
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Django's own 400s (a SuspiciousOperation such as too many form fields) bypass DRF.
    if _wants_json(request):
        return JsonResponse(error_body("bad_request", "The request could not be read."), status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        body = error_body("server_error", "Internal error; it has been logged.")
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
