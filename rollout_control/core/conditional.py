"""Versioned edits. A client that read version N may say so two ways:

- `If-Match: "N"` (HTTP's precondition): stale → 412 Precondition Failed (issue 3);
- `"version": N` in the JSON body: stale → 409 Conflict naming `version` (issue 9: of two edits
  from the same version one wins, the other is told; nothing is silently overwritten).

The service compares under a row lock, so two edits cannot both see version N.
"""

import re

from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

from rollout_control.core.exceptions import DomainError

# What the header may hold; the schema publishes the same pattern.
IF_MATCH_PATTERN = r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*$'
_IF_MATCH = re.compile(IF_MATCH_PATTERN)

IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    {"type": "string", "pattern": IF_MATCH_PATTERN},
    OpenApiParameter.HEADER,
    description='The version from the ETag, e.g. "3" (or `*`); 412 if it is no longer current.',
)
VERSION_HELP = (
    "The version this edit starts from (from a GET); if the object has changed since, 409 and "
    "nothing is written."
)


def if_match_version(request: Request) -> int | None:
    """The version an `If-Match` header names; None without one or for `*`."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _IF_MATCH.match(header)
    if match is None:
        raise DomainError('Must be the version from the ETag, e.g. "3".', field="If-Match")
    value = match.group(1)
    return None if value == "*" else int(value.removeprefix("W/").strip('"'))
