"""The refusals of the agreement rules (drafting, issuing, acceptance), one module below both
so `agreements` and `acceptance` raise the same classes.
"""
from __future__ import annotations

from portal.domain import DomainError


class AgreementError(DomainError):
    """An agreement rule refused the action."""


class AgreementStateError(AgreementError):
    """The agreement is not in a state that allows this step."""


class ServiceNotOwned(AgreementError):
    """A service given for the agreement belongs to another customer."""


class AnnexNeedsParent(AgreementError):
    """An annex type was used without the agreement it amends (or a parent of another customer)."""


class NoteRequired(AgreementError):
    """Invalidating an agreement needs a note saying why."""


class DocumentNotOpened(AgreementError):
    """The customer has not opened the current PDF of the agreement yet."""


class CodeInvalid(AgreementError):
    """The one-time code is wrong, or none is pending."""


class CodeExpired(AgreementError):
    """The one-time code is older than its validity."""


class TooManyAttempts(AgreementError):
    """The one-time code was guessed wrong too often; a new one must be sent."""


class TooManyCodes(AgreementError):
    """Too many codes were asked for within an hour."""
