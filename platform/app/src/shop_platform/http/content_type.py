"""Request bodies are JSON (API.md): a body sent as anything else is refused with 415, and one
nested deeper than the decoder goes is refused with 400 (not a 500 from deep inside it)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException, SerializationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def require_json(request: Request[Any, Any, Any]) -> None:
    """``before_request``: a request that carries a body must say it is JSON, and be readable."""
    if request.method not in _WITH_BODY:
        return
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if not has_body:
        return
    if not _is_json(headers.get("content-type", "")):
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Send the request body as application/json.",
        )
    try:
        # Litestar decodes the body untyped before it converts it, and keeps the result: this
        # is that same decode, done here where a body too deep to read is the client's error.
        await request.json()
    except SerializationException as malformed:  # what Litestar answers for it too
        raise ClientException(str(malformed)) from None
    except RecursionError:
        raise ClientException("The request body nests too deeply to be read.") from None
