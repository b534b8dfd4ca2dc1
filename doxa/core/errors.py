"""Domain errors. Edges translate them: REST into problem+json, SMTP into reply codes."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    title = "Not found"


class PermissionDenied(DomainError):
    title = "Forbidden"


class Unauthenticated(DomainError):
    title = "Unauthorized"


class Conflict(DomainError):
    title = "Conflict"


class InvalidInput(DomainError):
    title = "Invalid input"


class TooLarge(DomainError):
    title = "Payload too large"


class Rejected(DomainError):
    """Accepted input that can never become a ticket; kept in intake as `rejected`."""

    title = "Rejected"

    def __init__(self, detail: str, *, reason: str = "unusable") -> None:
        super().__init__(detail)
        self.reason = reason


class Unavailable(DomainError):
    """A dependency (database, relay) cannot be reached; the caller should retry."""

    title = "Service unavailable"


class TooManyRequests(DomainError):
    """Throttled, or the password hashing pool is full; the caller may retry after a while."""

    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)
