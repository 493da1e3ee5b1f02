"""Reading JSON from clients: one reader for the API's parser, OFREP and the dashboard's forms.

`json.loads` accepts two things the code after it cannot take, and each was a 500 or worse:

- nesting deep enough to exhaust the interpreter's stack, in the parser itself (a
  RecursionError) or in whatever walks the value next (validation, error flattening, jsonb);
- lone UTF-16 surrogates: the JSON text `"\\udc00"`, which browsers send when they cut a
  string mid-emoji. Such a `str` has no UTF-8 form, so PostgreSQL, the JSON renderers and the
  OFREP ETag fail on it, and mmh3 5.3.1 kills the whole process (SIGSEGV) when asked to hash it.

Both are refused here, at the boundary, naming where in the document the problem is. A document
that could hold neither (few brackets, no surrogate escape) is not walked at all, so the OFREP
hot path pays two byte counts and one regex search.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

MAX_DEPTH = 32
TEXT_MESSAGE = "Must be valid Unicode text (a lone surrogate such as \\udc00 is not)."
KEY_MESSAGE = "Keys must be valid Unicode text (a lone surrogate such as \\udc00 is not)."
DEPTH_MESSAGE = f"JSON nested more than {MAX_DEPTH} levels deep."

# \uD800-\uDFFF as JSON escapes them (an escaped backslash before "ud8" only costs a walk).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class UnreadableJson(ValueError):
    """The body is not a JSON document this service can take; `path` names where (DRF style,
    `samples[0].labels`), empty for the document as a whole."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


class TooDeep(UnreadableJson):
    pass


class InvalidText(UnreadableJson):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number.")


def loads(raw: bytes | str, *, allow_nan: bool = False) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_DEPTH (TooDeep) and text with lone
    surrogates, in keys or values (InvalidText). Raises ValueError for anything not JSON."""
    # Decoded here, strictly: json.loads(bytes) would decode with "surrogatepass", letting an
    # encoded surrogate (ED B0 80) through unescaped. JSON between systems is UTF-8 (RFC 8259).
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_constant=None if allow_nan else _reject_constant)
    except RecursionError:
        raise TooDeep(DEPTH_MESSAGE) from None
    if text.count("{") + text.count("[") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        check(value)
    return value


def is_text(value: str) -> bool:
    """Whether `value` has a UTF-8 form (no lone surrogate)."""
    if value.isascii():  # O(1) in CPython; a surrogate is never ASCII
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check(value: Any) -> None:
    """Raises TooDeep or InvalidText for a decoded JSON value (iteratively: the value may be
    deeper than the stack)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                raise InvalidText(TEXT_MESSAGE, path)
        elif isinstance(item, Mapping | list):
            if depth >= MAX_DEPTH:
                raise TooDeep(DEPTH_MESSAGE)
            if isinstance(item, list):
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                if isinstance(key, str) and not is_text(key):
                    raise InvalidText(KEY_MESSAGE, path)
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser through `loads`: a body nested too deep is a 400 parse error, text
    that is not valid Unicode a 400 naming the field."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return loads(stream.read().decode(encoding), allow_nan=not self.strict)
        except InvalidText as exc:
            if exc.path:
                raise ValidationError({exc.path: [exc.message]}) from None
            raise ParseError(f"JSON parse error - {exc.message}") from None
        except ValueError as exc:  # TooDeep, JSONDecodeError, UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
