"""Request bodies are JSON (API.md): a body sent as anything else is refused with 415."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def require_json(request: Request[Any, Any, Any]) -> None:
    """``before_request``: a request that carries a body must say it is JSON."""
    if request.method not in _WITH_BODY:
        return
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if has_body and not _is_json(headers.get("content-type", "")):
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Send the request body as application/json.",
        )
