"""Domain errors: exceptions named for the rule they protect, grouped by what the caller did."""

from __future__ import annotations

from typing import ClassVar

# Names an error's envelope uses for itself (RFC 9457 members); facts must be named otherwise.
RESERVED_DETAIL_NAMES = frozenset({"type", "title", "status", "detail", "instance"})


class DomainError(Exception):
    """Base of every error a context's domain or use cases raise on purpose.

    ``code`` is a stable, kebab-case name clients can branch on; ``details`` carries the
    facts (ids, skus, quantities) that explain the refusal.
    """

    code: ClassVar[str] = "domain-error"

    def __init__(self, message: str, **details: object) -> None:
        clashing = RESERVED_DETAIL_NAMES.intersection(details)
        if clashing:
            raise TypeError(f"detail names reserved for the error envelope: {sorted(clashing)}")
        super().__init__(message)
        self.message = message
        self.details = details


class RequestRefused(DomainError):
    """What the request carries cannot be used, whatever the state: a token that is unknown,
    used or expired. (A bad request, not a broken business rule.)"""

    code: ClassVar[str] = "request-refused"


class NotAuthenticated(DomainError):
    """The caller could not be told apart from anyone else: unknown, wrong secret, or disabled."""

    code: ClassVar[str] = "not-authenticated"


class PreconditionFailed(DomainError):
    """The caller's ``If-Match`` names a version that is no longer the current one."""

    code: ClassVar[str] = "precondition-failed"


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know that it does)."""

    code: ClassVar[str] = "not-found"


class Conflict(DomainError):
    """The request clashes with the current state: a duplicate, a stale version, a wrong status."""

    code: ClassVar[str] = "conflict"


class BusinessRuleViolated(DomainError):
    """The request is well formed but breaks a business rule."""

    code: ClassVar[str] = "business-rule-violated"


class InvalidField(BusinessRuleViolated):
    """A value the client sent breaks a rule of the domain; reported like a validation error."""

    code: ClassVar[str] = "invalid-field"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message, errors=[{"field": field_name, "message": message}])
        self.field = field_name

    def within(self, prefix: str) -> InvalidField:
        """The same refusal for a field nested under ``prefix`` (``items[2]`` + ``sku``)."""
        return InvalidField(f"{prefix}.{self.field}", self.message)


class ConcurrentChange(Conflict):
    """Someone else saved the same aggregate first (optimistic concurrency): nothing applied."""

    code: ClassVar[str] = "concurrent-change"

    def __init__(self, key: str = "") -> None:
        super().__init__("it was changed at the same time by someone else; try again", key=key)
