"""OpenFeature Remote Evaluation Protocol (OFREP) endpoints.

Plain Django views, not DRF: this is the hot path. Warm, a request reads only the in-process
snapshot (tokens included): no SQL, no Redis. The responses follow OFREP's schema exactly (the
published providers reject anything else): `variant` always present, errors always carry
`errorDetails`, metadata values are only strings, numbers and booleans.
"""

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from flags import metrics
from flags.evaluation import ErrorCode, Evaluation
from flags.selectors import evaluate_flag, evaluate_flags, flag_snapshot, snapshot_age_seconds
from rollout_control.core.authentication import raw_token_from
from rollout_control.core.parsers import InvalidText, loads
from rollout_control.core.ratelimit import TokenBucket, retry_after_header
from rollout_control.core.tokens import TokenSnap, token_lookup

_limiter = TokenBucket(rate=settings.CLIENT_RATE_LIMIT, burst=settings.CLIENT_RATE_BURST)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json(body: Any, status: int = 200, **headers: str) -> HttpResponse:
    return _json_text(_dumps(body), status, **headers)


def _json_text(text: str, status: int = 200, **headers: str) -> HttpResponse:
    # Bytes, so HttpResponse need not look up a charset to encode them (cheaper per request).
    response = HttpResponse(text.encode(), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class _Refusal(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _authorize(request: HttpRequest) -> TokenSnap:
    if request.method != "POST":
        raise _Refusal(_json({"errorDetails": "Use POST."}, 405, Allow="POST"))
    raw = raw_token_from(request)
    token = token_lookup(raw) if raw else None
    if token is None:
        how = "Send a client token as 'Authorization: Bearer <token>' or 'X-API-Key: <token>'."
        details = (
            f"No token was sent. {how}"
            if not raw
            else "The token was not recognised (unknown, revoked or expired). " + how
        )
        raise _Refusal(
            _json({"errorDetails": details}, 401, WWW_Authenticate='Bearer realm="ofrep"')
        )
    if token.is_ingest:
        details = "An ingest token may only push metric samples; evaluate with a client token."
        raise _Refusal(_json({"errorDetails": details}, 403))
    wait = _limiter.take(token.pk)
    if wait:
        metrics.rate_limited_total.inc()
        raise _Refusal(
            _json(
                {"errorDetails": "Rate limit reached."}, 429, Retry_After=retry_after_header(wait)
            )
        )
    return token


def _read_capped(stream: Any, cap: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < cap:
        chunk = stream.read(cap - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _body(request: HttpRequest) -> bytes:
    """The body, refused (413) past OFREP_MAX_BODY_BYTES before it is read: by its
    Content-Length, or, sent chunked, after reading one byte more than the limit."""
    limit = settings.OFREP_MAX_BODY_BYTES
    length = request.META.get("CONTENT_LENGTH")
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not length and chunked and "wsgi.input" in request.META:
        # Django reads no body without a Content-Length (it would look empty); read the chunks.
        raw = _read_capped(request.META["wsgi.input"], limit + 1)
        too_large = len(raw) > limit
    else:
        try:
            too_large = int(length or 0) > limit
        except ValueError:
            too_large = False
        raw = b"" if too_large else request.body
    if too_large:
        details = f"Request bodies are limited to {limit} bytes (OFREP_MAX_BODY_BYTES)."
        raise _Refusal(_json({"errorCode": "GENERAL", "errorDetails": details}, 413))
    return raw


def _context(raw: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(context, error code, error details) from the body `{"context": {...}}`."""
    if not raw.strip():
        return {}, None, None
    try:
        body = loads(raw, allow_nan=True)
    except InvalidText as exc:
        # Not text (a lone surrogate): it could not be hashed, stored or even echoed back.
        return None, ErrorCode.INVALID_CONTEXT, str(exc)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deep
        return None, ErrorCode.PARSE_ERROR, f"Body is not valid JSON: {exc}"
    if not isinstance(body, dict):
        return None, ErrorCode.PARSE_ERROR, "Body must be a JSON object with a 'context' object."
    context = body.get("context", {})
    if not isinstance(context, dict):  # null too: OFREP's document says an object
        return None, ErrorCode.INVALID_CONTEXT, "'context' must be a JSON object."
    if not isinstance(context.get("targetingKey", ""), str):
        # OFREP's document (and OpenFeature's SDKs) make the targeting key a string. Anything else
        # makes the whole context malformed, whichever flags would read it (bulk too). Other
        # attributes may still be integers where a flag buckets on them (e.g. orgId).
        return None, ErrorCode.INVALID_CONTEXT, "'targetingKey' must be a string."
    return context, None, None


_AGE = "snapshotAgeSeconds"
_AGE_PLACEHOLDER = "0}}"
# id(evaluation) -> (evaluation, its JSON up to the age's value, its metric labels). An entry
# holds its evaluation, so the id cannot be reused while cached; the bound keeps evaluations of
# snapshots replaced long ago from piling up.
_Encoded = tuple[Evaluation, str, metrics.Outcome]
_encoded: dict[int, _Encoded] = {}
_ENCODED_MAX = 20_000


def _encode_success(evaluation: Evaluation) -> _Encoded:
    """Encoded once per outcome: successful evaluations are prebuilt and shared by evaluate()
    (only errors quote the context), so per request only the snapshot's age is appended."""
    metadata = {
        k: v
        for k, v in evaluation.metadata.items()
        if isinstance(v, str | int | float | bool) and k != _AGE
    }
    metadata[_AGE] = 0  # last, so the age can be appended per request
    body = {
        "key": evaluation.key,
        "value": evaluation.value,
        "reason": evaluation.reason,
        "variant": evaluation.variant,
        "metadata": metadata,
    }
    head = _dumps(body).removesuffix(_AGE_PLACEHOLDER)
    entry = (evaluation, head, (evaluation.key, evaluation.variant, evaluation.reason))
    if len(_encoded) >= _ENCODED_MAX:
        _encoded.clear()
    _encoded[id(evaluation)] = entry
    return entry


def _age_suffix() -> str:
    return f"{snapshot_age_seconds()!r}}}}}"  # a float: JSON and repr() agree


def _failure(key: str, code: str, details: str | None) -> dict[str, Any]:
    return {"key": key, "errorCode": code, "errorDetails": details or code}


def _unavailable_as_503(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A process with no snapshot yet (started while the database is down) answers 503 in
    OFREP's shape instead of a 500; once it has one, the last snapshot keeps serving."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (OperationalError, InterfaceError):
            details = "Flag configuration is not loaded yet (database unreachable); retry shortly."
            return _json({"errorCode": "GENERAL", "errorDetails": details}, 503, Retry_After="5")

    return wrapper


@csrf_exempt
@_unavailable_as_503
def evaluate_one(request: HttpRequest, key: str) -> HttpResponse:
    try:
        _authorize(request)
        raw = _body(request)
    except _Refusal as refusal:
        return refusal.response
    context, code, details = _context(raw)
    if context is None:
        return _json(_failure(key, code, details), 400)
    evaluation = evaluate_flag(key=key, context=context)
    if evaluation.error_code == ErrorCode.FLAG_NOT_FOUND:
        metrics.count_evaluations((("(unknown)", "off", "ERROR"),))
        return _json(_failure(key, evaluation.error_code, evaluation.error_details), 404)
    if evaluation.error_code:
        metrics.count_evaluations(((key, "off", "ERROR"),))
        return _json(_failure(key, evaluation.error_code, evaluation.error_details), 400)
    entry = _encoded.get(id(evaluation))
    if entry is None or entry[0] is not evaluation:
        entry = _encode_success(evaluation)
    metrics.count_evaluations((entry[2],))
    return _json_text(entry[1] + _age_suffix())


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _etag(version: int | None, context: dict[str, Any]) -> str:
    canonical = _canonical(context)
    digest = hashlib.blake2b(f"{version}:{canonical}".encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def _matches(if_none_match: str, etag: str) -> bool:
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates


@csrf_exempt
@_unavailable_as_503
def evaluate_bulk(request: HttpRequest) -> HttpResponse:
    try:
        _authorize(request)
        raw = _body(request)
    except _Refusal as refusal:
        return refusal.response
    context, code, details = _context(raw)
    if context is None:
        return _json({"errorCode": code, "errorDetails": details}, 400)
    snapshot = flag_snapshot()
    etag = _etag(snapshot.version, context)
    if _matches(request.META.get("HTTP_IF_NONE_MATCH", ""), etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    evaluations = evaluate_flags(context=context, snapshot=snapshot)
    return _json_text(_bulk_body(evaluations), ETag=etag)


def _bulk_body(evaluations: list[Evaluation]) -> str:
    """`{"flags": [...]}`, counting each success: a tight loop, run once per flag per request."""
    suffix = _age_suffix()
    parts: list[str] = []
    outcomes: list[metrics.Outcome] = []
    encoded = _encoded
    for evaluation in evaluations:
        entry = encoded.get(id(evaluation))
        if entry is None or entry[0] is not evaluation:
            if evaluation.error_code:
                failure = _failure(evaluation.key, evaluation.error_code, evaluation.error_details)
                parts.append(_dumps(failure))
                continue
            entry = _encode_success(evaluation)
        parts.append(entry[1] + suffix)
        outcomes.append(entry[2])
    metrics.count_evaluations(outcomes)
    return '{"flags":[' + ",".join(parts) + "]}"
