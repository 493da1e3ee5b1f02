"""One-line text: names and keys hold no control characters.

A name ends up in places that take one line: e-mail subjects (a newline there raised
BadHeaderError and every team e-mail about that plan failed, unretried), log lines, table cells,
Slack titles. Free text (descriptions, reasons, feedback) keeps its line breaks and tabs.
"""

import re

from django.core.validators import RegexValidator

# C0 (tab, newline, CR ...), DEL, C1 (NEL ...) and the Unicode line and paragraph separators:
# everything str.splitlines() or a mail header would treat as a break, and the rest of C0/C1.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
CONTROL_CHARACTERS = re.compile(f"[{_CONTROL}]")
SINGLE_LINE_MESSAGE = "No control characters (line breaks, tabs and the like)."
# For OpenAPI documents (ECMA regex; Python's re reads it the same).
SINGLE_LINE_PATTERN = f"^[^{_CONTROL}]*$"

# A whole-value pattern, so drf-spectacular documents it (`pattern`) and a client, or the
# fuzzer, can tell in advance what is refused.
single_line = RegexValidator(f"^[^{_CONTROL}]*\\Z", SINGLE_LINE_MESSAGE, code="control_characters")


def one_line(text: str) -> str:
    """`text` with each run of control characters as one space: for mail subjects built from
    names stored before names were checked, or set where no serializer looks (the admin)."""
    return re.sub(f"[{_CONTROL}]+", " ", text).strip()
