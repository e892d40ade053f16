"""The billing refusals: one DomainError subclass per kind of "no"."""
from __future__ import annotations

from portal.domain import DomainError

# ---------------------------------------------------------------- errors


class InvalidPeriod(DomainError):
    """The billing period is not a month written as YYYY-MM."""


class NoBillingPlan(DomainError):
    """There is something to bill but no billing plan to bill it under."""


class VariableSymbolClash(DomainError):
    """Two invoice series would give invoices the same variable symbol."""


class InvoiceImmutable(DomainError):
    """An issued invoice's lines, totals or number were about to change."""


class CreditNoteRefused(DomainError):
    """The credit note cannot be issued (no reason, a credit note, nothing left to credit…)."""


class BillingRunRefused(DomainError):
    """A billing run cannot be requested or carried out (scope, one already waiting…)."""


class InvoiceNotSent(DomainError):
    """The invoice cannot be e-mailed (no address, a cancelled invoice…)."""


class CancellationRefused(DomainError):
    """The invoice cannot be cancelled (paid, already cancelled, a credit note)."""
