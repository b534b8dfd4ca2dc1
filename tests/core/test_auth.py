"""Passwords: an unknown user's check costs what a known user's does."""

from __future__ import annotations

import statistics
import time

import pytest

from doxa.core.auth import Passwords

ROUNDS = 10  # tens of milliseconds a check: far above the timer's noise


class TestPasswords:
    def test_a_password_checks_against_its_hash_only(self) -> None:
        passwords = Passwords(4)
        stored = passwords.hash("correct horse")
        assert passwords.verify("correct horse", stored)
        assert not passwords.verify("wrong horse", stored)

    def test_no_password_matches_an_unknown_user(self) -> None:
        assert not Passwords(4).verify("not-a-real-password", None)

    @pytest.mark.timing  # compares the medians of two timed samples
    def test_an_unknown_users_check_takes_as_long_as_a_known_users(self) -> None:
        passwords = Passwords(ROUNDS)
        stored = passwords.hash("correct horse")
        known, unknown = [], []
        for _ in range(7):
            started = time.perf_counter()
            assert not passwords.verify("wrong horse", stored)
            known.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert not passwords.verify("wrong horse", None)
            unknown.append(time.perf_counter() - started)
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.7 < ratio < 1.4
