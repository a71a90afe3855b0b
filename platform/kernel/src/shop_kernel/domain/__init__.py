"""Domain building blocks: pure Python, importable from every context's domain layer."""

from shop_kernel.domain.aggregate import AggregateRoot, DomainEvent
from shop_kernel.domain.errors import (
    BusinessRuleViolated,
    Conflict,
    DomainError,
    NotAuthenticated,
    NotFound,
)

__all__ = [
    "AggregateRoot",
    "BusinessRuleViolated",
    "Conflict",
    "DomainError",
    "DomainEvent",
    "NotAuthenticated",
    "NotFound",
]
