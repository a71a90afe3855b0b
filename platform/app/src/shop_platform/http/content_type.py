"""Request bodies are JSON (API.md): a body sent as anything else is refused with 415, one
nested deeper than the decoder goes is refused with 400 (not a 500 from deep inside it), and
one that is not what its schema says is refused with 422 naming the field.

Types are checked strictly: Litestar converts a handler's arguments in msgspec's lax mode
(``strict=False``), which query strings and path segments need (``?limit=2``) but which would
also take ``"quantity": "2"`` or ``"is_active": "true"`` in a body for an integer and a boolean,
although the OpenAPI document says integer and boolean. So before Litestar converts it, the
body is decoded against the handler's ``data`` type the way JSON means it (``strict=True``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.serialization import decode_json
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE, HTTP_422_UNPROCESSABLE_ENTITY

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
    await _decode_strictly(request)


async def _decode_strictly(request: Request[Any, Any, Any]) -> None:
    """422 naming the field when the body is not of the handler's ``data`` type in JSON's own
    terms (no string for an integer or a boolean). Litestar then converts it as usual."""
    handler = request.route_handler
    body_parameter = handler.parsed_fn_signature.parameters.get("data")
    if body_parameter is None:
        return
    try:
        # The raw annotation keeps its constraints; msgspec ignores Litestar's Body marker.
        decode_json(
            await request.body(),
            target_type=body_parameter.raw,
            type_decoders=handler.resolve_type_decoders(),
            strict=True,
        )
    except SerializationException as invalid:
        if not isinstance(invalid.__cause__, msgspec.ValidationError):
            raise ClientException(str(invalid)) from None
        raise ValidationException(
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"Validation failed for {request.method} {request.url.path}",
            # The problem handler names the field from msgspec's "- at `$.items[0].quantity`".
            extra=[{"message": str(invalid.__cause__), "key": "data", "source": "body"}],
        ) from None
    except RecursionError:
        raise ClientException("The request body nests too deeply to be read.") from None
