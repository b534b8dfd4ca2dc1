"""One classification of send failures, and the retry schedule."""

from __future__ import annotations

import random
import smtplib
from datetime import timedelta

import pytest

from doxa.core.db import utcnow
from doxa.core.outbox.failures import RETRY_BASE, RETRY_MAX, classify, retry_at

PERMANENT = [
    smtplib.SMTPDataError(554, b"5.7.1 Message refused"),
    smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"5.1.1 No such user")}),
    smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", "support@example.com"),
    smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server"),
    UnicodeEncodeError("ascii", "jörg", 1, 2, "ordinal not in range"),
    ValueError("Header values may not contain linefeed or carriage return characters"),
]
TEMPORARY = [
    smtplib.SMTPDataError(451, b"4.3.0 Try again later"),
    smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"4.2.1 Greylisted")}),
    smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
]


class TestClassify:
    @pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
    def test_no_retry_can_change_these(self, exc: Exception) -> None:
        assert classify(exc).permanent

    @pytest.mark.parametrize("exc", TEMPORARY, ids=lambda e: type(e).__name__)
    def test_these_may_pass_later(self, exc: Exception) -> None:
        assert not classify(exc).permanent

    def test_the_reason_is_the_relays_answer(self) -> None:
        failure = classify(smtplib.SMTPDataError(554, b"5.7.1 Message refused"))
        assert failure.reason == "554 5.7.1 Message refused"


class TestRetryAt:
    def test_backoff_doubles_with_jitter_up_to_the_cap(self) -> None:
        now, rng = utcnow(), random.Random(1)
        for attempts in range(1, 12):
            step = min(RETRY_MAX, RETRY_BASE * 2 ** (attempts - 1))
            delay = retry_at(now, attempts, rng=rng) - now
            assert step / 2 <= delay <= step
        delays = {retry_at(now, 3, rng=rng) for _ in range(5)}
        assert len(delays) == 5  # items failed together do not come back together
        assert retry_at(now, 40, rng=rng) - now <= timedelta(hours=1)
