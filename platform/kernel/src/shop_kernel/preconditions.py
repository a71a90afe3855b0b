"""ETags and ``If-Match`` (API.md): a response names the version it shows, a change may insist
on the version it was based on (412 when that moved on)."""

from __future__ import annotations

import re
from typing import Annotated, Protocol, TypeVar

from litestar import Response
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_200_OK


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


T = TypeVar("T", bound=Versioned)

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        max_length=100,
        description='Apply the change only to this version (the ETag, e.g. `"7"`); else 412.',
    ),
]


def expected_version(if_match: str | None) -> int | None:
    """``If-Match: "7"`` -> 7; ``*`` or no header -> no precondition; anything else matches
    no version (-1), so the change is refused with 412."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not re.fullmatch(r"[0-9]{1,18}", tag):
        return -1
    return int(tag)


def tagged(body: T, status: int = HTTP_200_OK) -> Response[T]:
    """``body`` with ``ETag: "<its version>"``."""
    return Response(body, status_code=status, headers={"ETag": f'"{body.version}"'})
