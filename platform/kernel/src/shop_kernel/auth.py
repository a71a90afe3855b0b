"""Who is calling: access tokens, the principal behind them, the admin guard. Which routes are
public and which are rate-limited, each context declares in its module (``ContextModule``).

Every context's controllers use this one mechanism. Tokens are HS256 JWTs checked by Litestar's
``JWTAuth`` (algorithm allowlist, issuer, audience, required claims, expiry); the principal is
then looked up on every request through a two-second Redis cache, so a deactivated account, a
changed role or a bumped token generation takes effect within seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Protocol, cast
from uuid import UUID

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AuthenticationResult
from litestar.openapi.spec import Components, SecurityScheme
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token
from litestar.types import HTTPScope, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop_kernel.log import get_logger
from shop_kernel.settings import Settings, SettingsError, env_name

log = get_logger(__name__)

Role = Literal["customer", "admin"]

ISSUER: Final = "shop"
AUDIENCE: Final = "shop-api"
ALGORITHM: Final = "HS256"
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub")
SIGNING_KEY_FILE: Final = "jwt-signing-key"
MIN_KEY_LENGTH: Final = 32
PRINCIPAL_CACHE_TTL_MS: Final = 2000


# ------------------------------------------------------------------------------ principals


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as ``request.user``."""

    user_id: UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """What the users context knows about an account that the auth check needs."""

    user_id: UUID
    role: Role
    is_active: bool
    token_generation: int


class PrincipalSource(Protocol):
    """Provided by the users context (registered in the container as ``PrincipalSource``)."""

    async def load(self, user_id: UUID) -> PrincipalRecord | None: ...


def principal_cache_key(user_id: UUID) -> str:
    """Delete this key to make a change to the account count at once instead of within 2 s."""
    return f"shop:principal:{user_id}"


class CachedPrincipals:
    """A ``PrincipalSource`` that asks Redis first (2 s) and the real source on a miss.

    Both are given as callables because the stores open in the app's lifespan, after the app
    is built. A missing source refuses everyone; a Redis outage only costs the cache.
    """

    def __init__(
        self,
        source: Callable[[], PrincipalSource | None],
        redis: Callable[[], Redis],
        *,
        ttl_ms: int = PRINCIPAL_CACHE_TTL_MS,
    ) -> None:
        self._source = source
        self._redis = redis
        self._ttl_ms = ttl_ms

    async def load(self, user_id: UUID) -> PrincipalRecord | None:
        key = principal_cache_key(user_id)
        try:
            cached = await self._redis().get(key)
        except RedisError as exc:
            log.warning("principal cache unavailable", error=repr(exc))
            cached = None
        if cached is not None:
            try:
                return msgspec.json.decode(cached, type=PrincipalRecord | None)
            except msgspec.ValidationError:
                pass  # written by an older version: load it again
        source = self._source()
        if source is None:
            log.warning("no PrincipalSource is registered; refusing every token")
            return None
        record = await source.load(user_id)
        try:
            await self._redis().set(key, msgspec.json.encode(record), px=self._ttl_ms)
        except RedisError as exc:
            log.warning("principal cache unavailable", error=repr(exc))
        return record


# ------------------------------------------------------------------------------ signing key


def signing_key(settings: Settings) -> str:
    """``SHOP_JWT_SECRET``, or else a random key made once and kept under the data dir.

    The file appears atomically with its content (written to a private ``O_EXCL`` draft with
    mode 0600, then hard-linked into place), so processes starting together agree on one key.
    """
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    path = settings.data_path / SIGNING_KEY_FILE
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{SIGNING_KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(64) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"{path}: the generated token signing key is damaged; delete the file "
            f"(every issued token stops working) or set {env_name('jwt_secret')}"
        )
    return key


# ------------------------------------------------------------------------------ tokens


@dataclass
class AccessToken(Token):
    """The claims of a shop access token: Litestar's, plus the account's token generation."""

    gen: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class Tokens:
    """Issues access tokens; ``jwt_auth`` checks them with the same key and claims."""

    def __init__(self, settings: Settings, key: str | None = None) -> None:
        self.key = signing_key(settings) if key is None else key
        if len(self.key) < MIN_KEY_LENGTH:
            raise ValueError(f"a signing key has at least {MIN_KEY_LENGTH} characters")
        self.ttl_s = settings.access_token_ttl_s

    def __repr__(self) -> str:
        return f"Tokens(ttl_s={self.ttl_s})"

    def issue(self, record: PrincipalRecord) -> IssuedToken:
        if not record.is_active:
            raise ValueError("no token for a deactivated account")
        now = datetime.now(UTC)
        token = AccessToken(
            sub=str(record.user_id),
            iat=now,
            exp=now + timedelta(seconds=self.ttl_s),
            iss=ISSUER,
            aud=AUDIENCE,
            jti=uuid.uuid4().hex,
            gen=record.token_generation,
        )
        return IssuedToken(token.encode(self.key, ALGORITHM), self.ttl_s)

    def decode(self, encoded: str) -> AccessToken:
        """The checked claims; ``NotAuthorizedException`` for anything not issued by us."""
        return AccessToken.decode(
            encoded,
            self.key,
            ALGORITHM,
            audience=[AUDIENCE],
            issuer=[ISSUER],
            require_claims=REQUIRED_CLAIMS,
        )


def jwt_auth(
    tokens: Tokens,
    source: Callable[[], PrincipalSource | None],
    redis: Callable[[], Redis],
    *,
    public_prefixes: Sequence[str] = (),
    public_routes: Iterable[tuple[str, str]] = (),
    open_reads: Sequence[str] = (),
) -> JWTAuth[Principal, AccessToken]:
    """Bearer-token auth for every route but ``public_prefixes`` (a path and all below it) and
    ``public_routes`` (exact ``(method, path)`` pairs such as ``("POST", "/users")``).

    Under ``open_reads`` (path prefixes), GET and HEAD need no token, but one that is sent
    is checked: an admin browsing the catalog is still known as an admin.

    A token passes when Litestar accepts it and the account exists, is active and still has
    the token's generation; otherwise the request gets 401.
    """
    principals = CachedPrincipals(source, redis)

    async def retrieve_principal(
        token: AccessToken, _connection: ASGIConnection[Any, Any, Any, Any]
    ) -> Principal | None:
        try:
            user_id = UUID(token.sub)
        except ValueError:
            return None
        record = await principals.load(user_id)
        if record is None or not record.is_active or record.token_generation != token.gen:
            return None
        return Principal(record.user_id, record.role)

    public = frozenset((method.upper(), _normal_path(path)) for method, path in public_routes)

    class BearerAuthMiddleware(_BearerAuthMiddleware):
        public_routes = public
        open_read_prefixes = tuple(prefix.rstrip("/") for prefix in open_reads)

    exclude = (
        [rf"^{re.escape(prefix.rstrip('/'))}(?:/|$)" for prefix in public_prefixes]
        if public_prefixes
        else None
    )
    return _JWTAuth(
        token_secret=tokens.key,
        retrieve_user_handler=retrieve_principal,
        algorithm=ALGORITHM,
        token_cls=AccessToken,
        accepted_issuers=[ISSUER],
        accepted_audiences=[AUDIENCE],
        require_claims=list(REQUIRED_CLAIMS),
        default_token_expiration=timedelta(seconds=tokens.ttl_s),
        exclude=exclude,
        exclude_http_methods=["OPTIONS"],
        authentication_middleware_class=BearerAuthMiddleware,
        description="An access token from POST /auth/token.",
    )


class _JWTAuth(JWTAuth[Principal, AccessToken]):
    """Litestar's ``JWTAuth`` whose OpenAPI scheme is valid OpenAPI 3.1: an ``http`` scheme
    names no header (``name`` belongs to ``apiKey`` schemes only; the bearer scheme implies
    ``Authorization``)."""

    @property
    def openapi_components(self) -> Components:
        return Components(
            security_schemes={
                self.openapi_security_scheme_name: SecurityScheme(
                    type="http",
                    scheme="Bearer",
                    bearer_format="JWT",
                    description=self.description,
                )
            }
        )


class _BearerAuthMiddleware(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware, but only for ``Bearer`` credentials, skipping public
    ``(method, path)`` pairs, and with one answer (401 + ``WWW-Authenticate``) for every
    refusal so that a client learns nothing about why."""

    public_routes: frozenset[tuple[str, str]] = frozenset()
    open_read_prefixes: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            (scope["method"], _normal_path(scope["path"])) in self.public_routes
            or self._anonymous_read(scope)
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _anonymous_read(self, scope: Scope) -> bool:
        request = cast("HTTPScope", scope)
        if request["method"] not in ("GET", "HEAD"):
            return False
        path = _normal_path(request["path"])
        if not any(path == p or path.startswith(p + "/") for p in self.open_read_prefixes):
            return False
        return not any(name == b"authorization" for name, _ in request["headers"])

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        scheme, _, credentials = (connection.headers.get(self.auth_header) or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("A bearer token is required")
        try:
            return await self.authenticate_token(credentials.strip(), connection)
        except NotAuthorizedException:
            raise _unauthorized("The token is not valid") from None


def _unauthorized(detail: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _normal_path(path: str) -> str:
    return path.rstrip("/") or "/"


# ------------------------------------------------------------------------------ guards


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Who is asking, on a route that anyone may read (None: nobody signed in)."""
    user: object = cast("dict[str, object]", connection.scope).get("user")
    return user if isinstance(user, Principal) else None


async def admin_only(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Route guard: 403 unless the caller is an admin. Async, so Litestar runs it in place
    rather than in a worker thread."""
    user = connection.user
    if not (isinstance(user, Principal) and user.is_admin):
        raise PermissionDeniedException(detail="This needs the admin role")
