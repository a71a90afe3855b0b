"""Domain building blocks: pure Python, importable from every context's domain layer."""

from shop_kernel.domain.aggregate import AggregateRoot, DomainEvent
from shop_kernel.domain.errors import (
    BusinessRuleViolated,
    Conflict,
    DomainError,
    InvalidField,
    NotAuthenticated,
    NotFound,
    PreconditionFailed,
)
from shop_kernel.domain.money import CurrencyMismatch, Money, MoneyOutOfRange

__all__ = [
    "AggregateRoot",
    "BusinessRuleViolated",
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
]
