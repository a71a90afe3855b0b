"""Domain building blocks: pure Python, importable from every context's domain layer."""

from shop_kernel.domain.aggregate import AggregateRoot, DomainEvent
from shop_kernel.domain.errors import (
    BusinessRuleViolated,
    ConcurrentChange,
    Conflict,
    DomainError,
    InvalidField,
    NotAuthenticated,
    NotFound,
    PreconditionFailed,
    RequestRefused,
)
from shop_kernel.domain.money import CurrencyMismatch, Money, MoneyOutOfRange

__all__ = [
    "AggregateRoot",
    "BusinessRuleViolated",
    "ConcurrentChange",
    "Conflict",
    "CurrencyMismatch",
    "DomainError",
    "DomainEvent",
    "InvalidField",
    "Money",
    "MoneyOutOfRange",
    "NotAuthenticated",
    "NotFound",
    "PreconditionFailed",
    "RequestRefused",
]
