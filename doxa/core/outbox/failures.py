"""One classification of send failures, and the retry schedules, for every kind of item.

Mail's failures are smtplib's exceptions, sorted here. A courier that judges its own answers
(a webhook's HTTP status) raises `Undelivered` with its verdict, made by `http_failure`.
"""

from __future__ import annotations

import random
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
# The longest wait a receiver's Retry-After may ask for (SPEC "Events out").
RETRY_AFTER_MAX = timedelta(hours=1)
_REASON_CHARS = 2000
# Its own generator: the module's global state belongs to whoever seeds it (tests, Hypothesis).
_JITTER = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Failure:
    permanent: bool
    reason: str
    # The wait the receiver asked for (Retry-After), instead of the backoff's.
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential steps from `base`, capped at `cap`; `full_jitter` waits anywhere from zero
    to the step, else half to all of it."""

    base: timedelta
    cap: timedelta
    full_jitter: bool = False


MAIL_BACKOFF = Backoff(RETRY_BASE, RETRY_MAX)


class Undelivered(Exception):
    """A courier's own verdict on a send that failed, with what it wants to record of it."""

    def __init__(self, failure: Failure, receipt: object = None) -> None:
        super().__init__(failure.reason)
        self.failure, self.receipt = failure, receipt


def classify(exc: BaseException) -> Failure:
    """Permanent when no retry can change the answer: a 5xx, a feature the relay lacks, a mail
    that cannot be composed or encoded. Temporary: a 4xx, the relay down or slow, anything else."""
    if isinstance(exc, Undelivered):
        return exc.failure
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


def http_failure(status: int, headers: dict[str, str], *, now: datetime) -> Failure:
    """An HTTP answer that is not 2xx: 408, 429 and 5xx are temporary (with the Retry-After
    the receiver asked for); a redirect (never followed) and any other 4xx are permanent."""
    reason = f"HTTP {status}"
    if status in (408, 429) or status >= 500:
        return Failure(False, reason, _retry_after(headers, now))
    if 300 <= status < 400:
        reason += " (redirects are not followed)"
    return Failure(True, reason)


def _retry_after(headers: dict[str, str], now: datetime) -> timedelta | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    if not value:
        return None
    if value.isdigit():
        wait = timedelta(seconds=min(int(value[:8]), int(RETRY_AFTER_MAX.total_seconds())))
    else:
        try:
            wait = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return max(timedelta(0), min(wait, RETRY_AFTER_MAX))


def retry_at(
    now: datetime,
    attempts: int,
    *,
    rng: random.Random | None = None,
    backoff: Backoff = MAIL_BACKOFF,
) -> datetime:
    """Exponential backoff, capped, with jitter so that items failed together do not come
    back together."""
    step: timedelta = min(backoff.cap, backoff.base * 2 ** min(max(attempts - 1, 0), 32))
    draw = (rng or _JITTER).random()
    jitter: float = draw if backoff.full_jitter else 0.5 + draw / 2
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
