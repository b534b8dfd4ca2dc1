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


class Rejected(InvalidInput):
    """Accepted input that can never become a ticket (empty, no header block and no sender, a
    provider post without a message): kept in intake as `rejected` with `reason`, never retried."""

    title = "Rejected"

    def __init__(self, detail: str, *, reason: str = "unusable") -> None:
        super().__init__(detail)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:  # out of a worker process, with its reason
        return _rejected, (self.detail, self.reason)


def _rejected(detail: str, reason: str) -> Rejected:
    return Rejected(detail, reason=reason)


class Unavailable(DomainError):
    """A dependency (database, relay) cannot be reached; the caller should retry."""

    title = "Service unavailable"


class TooManyRequests(DomainError):
    """Throttled, or the password hashing pool is full; the caller may retry after a while."""

    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


# Not domain errors: the worker processes (doxa.runtime.pool) raise them, processing records
# them on the event. Here, so that a worker process need not import the domain to raise them.


class WorkerLost(Exception):
    """The process working on the event ended before it answered (killed, out of memory)."""


class ProcessingTimeout(WorkerLost):
    """The event ran past PROCESSING_TIMEOUT_SECONDS; the process working on it was replaced."""

    reason = "timeout"
