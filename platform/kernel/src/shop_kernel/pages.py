"""Pages of a read view (API.md lists): opaque cursors and the checks on list queries."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

T = TypeVar("T")

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
# A cursor is its page's last key (never empty) in unpadded base64url (RFC 4648, section 5):
# groups of four characters, the last of two to four. The schema states exactly the form
# page_start reads, so any text of that form is a well-formed cursor (of this list or not:
# 422), and any other is a bad request (400).
CURSOR_MAX_LENGTH = 200
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*[A-Za-z0-9_-]{2,4}$"
_CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="Where the next page starts: a next_cursor of this list, as handed out.",
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Items per page (1..100).")]


def encode_cursor(last_key: str) -> str:
    """The opaque cursor of a page that ended at ``last_key`` (views page in key order)."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def keyset_page(
    rows: Sequence[T], limit: int, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """One page from the ``limit + 1`` rows a list read after its cursor, in key order: the
    first ``limit``, and the cursor of the next page, if the extra row says there is one."""
    page = list(rows[:limit])
    more = len(rows) > limit
    return page, (encode_cursor(key(page[-1])) if more and page else None)


def page_start(
    q: str | None,
    cursor: str | None,
    *,
    valid_key: Callable[[str], bool],
    text_parameter: str = "q",
) -> str | None:
    """The key a page starts after, from a list query's search text (``q``, or the parameter
    named) and ``cursor``; 400 naming the parameter for search text with control characters
    or a cursor not of the cursors' form, 422 for a cursor this list did not hand out.
    """
    if q is not None and any(unicodedata.category(char) == "Cc" for char in q):
        raise _invalid(text_parameter, "the search text cannot hold control characters")
    if cursor is None:
        return None
    # The schema's pattern is checked with re.search, whose $ also matches before a last
    # newline: the whole text must be of the form.
    if len(cursor) > CURSOR_MAX_LENGTH or _CURSOR.fullmatch(cursor) is None:
        raise _invalid("cursor", "a cursor is a next_cursor as handed out (unpadded base64url)")
    try:
        key = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except UnicodeDecodeError:
        key = None
    if key is None or not valid_key(key):
        # Of the form, but not a cursor this list handed out.
        raise _invalid("cursor", "not a cursor of this list", status=422)
    return key


def _invalid(parameter: str, message: str, status: int = 400) -> ValidationException:
    return ValidationException(
        message, extra=[{"key": parameter, "message": message}], status_code=status
    )
