"""One classification of send failures, and one retry schedule, for every kind of item."""

from __future__ import annotations

import random
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
_REASON_CHARS = 2000
# Its own generator: the module's global state belongs to whoever seeds it (tests, Hypothesis).
_JITTER = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Failure:
    permanent: bool
    reason: str


def classify(exc: BaseException) -> Failure:
    """Permanent when no retry can change the answer: a 5xx, a feature the relay lacks, a mail
    that cannot be composed or encoded. Temporary: a 4xx, the relay down or slow, anything else."""
    reason = _reason(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return Failure(bool(codes) and all(code >= 500 for code in codes), reason)
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, DATA refused, ...
        return Failure(exc.smtp_code >= 500, reason)
    # e.g. a non-ASCII address and a relay without SMTPUTF8; a header no mail may carry.
    if isinstance(exc, smtplib.SMTPNotSupportedError | ValueError | TypeError | LookupError):
        return Failure(True, reason)
    return Failure(False, reason)  # connection refused or reset, timeouts, the relay gone


def composition_failure(exc: BaseException) -> Failure:
    return Failure(True, f"cannot be composed: {_reason(exc)}"[:_REASON_CHARS])


def retry_at(now: datetime, attempts: int, *, rng: random.Random | None = None) -> datetime:
    """Exponential backoff from RETRY_BASE, capped at RETRY_MAX, with jitter (half to all of
    the step) so that items failed together do not come back together."""
    step: timedelta = min(RETRY_MAX, RETRY_BASE * 2 ** max(attempts - 1, 0))
    jitter: float = 0.5 + (rng or _JITTER).random() / 2
    return now + step * jitter


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        text = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
        )
        return f"recipient refused: {text}"[:_REASON_CHARS]
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"[:_REASON_CHARS]
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:_REASON_CHARS]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
