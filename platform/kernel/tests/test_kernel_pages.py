"""List cursors: what the schema states is exactly what ``page_start`` reads."""

from __future__ import annotations

import re

import pytest
from litestar.exceptions import ValidationException

from shop_kernel.pages import (
    CURSOR_MAX_LENGTH,
    CURSOR_PATTERN,
    encode_cursor,
    keyset_page,
    page_start,
)


def status_of(cursor: str) -> int:
    try:
        page_start(None, cursor, valid_key=lambda key: key.startswith("K"))
    except ValidationException as refused:
        return refused.status_code
    return 200


@pytest.mark.parametrize(
    "key", ["K", "KEY-1", "K" * 140, "K|2026-12-03T10:00:00+00:00|x", "K\u00e9\u4e2d"]
)
def test_every_cursor_handed_out_is_of_the_stated_form(key: str) -> None:
    cursor = encode_cursor(key)
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert 2 <= len(cursor) <= CURSOR_MAX_LENGTH
    assert page_start(None, cursor, valid_key=lambda _key: True) == key


@pytest.mark.parametrize(
    ("cursor", "status"),
    [
        (encode_cursor("KEY-1"), 200),
        (encode_cursor("other"), 422),  # of the form, but not a key of this list
        ("__8", 422),  # of the form, but not UTF-8 once decoded
        ("AAAAA", 400),  # five characters are no base64 (a group of one)
        ("", 400),  # no key is empty
        ("S0VZ\n", 400),  # the stated pattern's $ matches before a last newline in Python
        ("S0V+", 400),  # standard base64, not base64url
        ("S0VZ=", 400),  # padded
        ("S0VZ" * 51, 400),  # over the stated length
    ],
)
def test_a_cursor_not_of_the_stated_form_is_a_bad_request(cursor: str, status: int) -> None:
    assert status_of(cursor) == status
    # and the schema says so (fullmatch: the whole text, as JSON Schema's pattern means it)
    stated = re.fullmatch(CURSOR_PATTERN, cursor) is not None and len(cursor) <= CURSOR_MAX_LENGTH
    assert stated == (status != 400)


def test_a_keyset_page_is_the_first_limit_rows_and_a_cursor_only_when_more_were_read() -> None:
    rows = ["a", "b", "c", "d"]  # limit + 1 read: there is a next page
    assert keyset_page(rows, 3, key=str.upper) == (["a", "b", "c"], encode_cursor("C"))
    assert keyset_page(rows[:3], 3, key=str.upper) == (["a", "b", "c"], None)  # the last page
    assert keyset_page([], 3, key=str.upper) == ([], None)
