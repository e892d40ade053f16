"""Business rules as plain functions over a Session: no request, no templates."""


class DomainError(Exception):
    """A rule refused the action; the message is shown to the user next to the field."""

    field: str | None = None

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
