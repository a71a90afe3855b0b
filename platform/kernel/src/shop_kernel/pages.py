"""Pages of a read view (API.md lists): opaque cursors and the checks on list queries."""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Callable
from typing import Annotated

from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

# The list parameters every list takes; the schema states what page_start checks.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"
SearchText = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        pattern=NO_CONTROL_CHARACTERS,
        description="Search text (case-insensitive prefix); no control characters.",
    ),
]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=200, description="Where the next page starts (next_cursor)."),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Items per page (1..100).")]


def encode_cursor(last_key: str) -> str:
    """The opaque cursor of a page that ended at ``last_key`` (views page in key order)."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def page_start(
    q: str | None,
    cursor: str | None,
    *,
    valid_key: Callable[[str], bool],
    text_parameter: str = "q",
) -> str | None:
    """The key a page starts after, from a list query's search text (``q``, or the parameter
    named) and ``cursor``; 400 naming the parameter for search text with control characters,
    422 for a cursor this list did not hand out.
    """
    if q is not None and any(unicodedata.category(char) == "Cc" for char in q):
        raise _invalid(text_parameter, "the search text cannot hold control characters")
    if cursor is None:
        return None
    try:
        key = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (ValueError, UnicodeDecodeError):
        key = None
    if key is None or not valid_key(key):
        # Well formed (any text may be a cursor), but not one this list handed out.
        raise _invalid("cursor", "not a cursor of this list", status=422)
    return key


def _invalid(parameter: str, message: str, status: int = 400) -> ValidationException:
    return ValidationException(
        message, extra=[{"key": parameter, "message": message}], status_code=status
    )
