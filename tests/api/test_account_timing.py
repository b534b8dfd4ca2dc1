"""The time of a sign-up or reset answer does not tell which addresses have accounts.

Played from outside: 500 requests for existing accounts and 500 for unknown addresses,
interleaved in a random order (so load on the machine falls on both alike), each from its own
network (no throttle is hit). A threshold on the answer time fitted on one half of the pairs
must sort no more than 60 % of the other half right (50 % is a coin toss).
"""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.models import User
from tests.conftest import MailClient

pytestmark = pytest.mark.timing

PER_CLASS = 500
BEST_ALLOWED = 0.60


def _best_threshold(known: list[float], unknown: list[float]) -> tuple[float, bool]:
    """The cut (and its side) that sorts these samples best: (t, True) means "slower than t
    is known"."""
    samples = sorted([(t, True) for t in known] + [(t, False) for t in unknown])
    best, cut, slower_known = 0.0, 0.0, True
    known_below = 0
    for i, (value, is_known) in enumerate(samples):
        known_below += is_known
        unknown_below = i + 1 - known_below
        # Below the cut is "unknown" and above is "known", or the other way round.
        right = unknown_below + (len(known) - known_below)
        for accuracy, side in ((right, True), (len(samples) - right, False)):
            if accuracy > best:
                best, cut, slower_known = accuracy, value, side
    return cut, slower_known


def _sorted_right(known: list[float], unknown: list[float], cut: float, slower: bool) -> float:
    right = sum((t > cut) == slower for t in known) + sum((t > cut) != slower for t in unknown)
    return right / (len(known) + len(unknown))


def _time(http: TestClient, path: str, email: str) -> float:
    started = time.perf_counter()
    answer = http.post(path, json={"email": email})
    elapsed = time.perf_counter() - started
    assert answer.status_code == 202, answer.text
    return elapsed


@pytest.fixture
def accounts(clean: Context) -> list[str]:
    """PER_CLASS active accounts with a password (bcrypt's cost is not what is measured)."""
    emails = [f"member{i}@example.com" for i in range(PER_CLASS)]
    stored = clean.passwords.hash("an unused long password")
    with transaction(clean.sessions) as db:
        db.execute(
            sa.insert(User),
            [{"email": e, "role": Role.CLIENT, "password_hash": stored} for e in emails],
        )
    return emails


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/api/v1/auth/password-reset", "/api/v1/auth/register"])
def test_a_fitted_threshold_cannot_tell_known_addresses_from_unknown(
    mail_client: MailClient, accounts: list[str], path: str
) -> None:
    rng = random.Random(19)
    times: dict[bool, list[float]] = {True: [], False: []}
    for i, known in enumerate(accounts):
        http = mail_client(f"198.18.{i // 200}.{i % 200 + 1}")  # its own network each time
        pair = [(True, known), (False, f"stranger{i}@example.com")]
        rng.shuffle(pair)
        for is_known, email in pair:
            times[is_known].append(_time(http, path, email))
    fit = {k: v[0::2] for k, v in times.items()}
    check = {k: v[1::2] for k, v in times.items()}
    cut, slower = _best_threshold(fit[True], fit[False])
    assert _sorted_right(check[True], check[False], cut, slower) <= BEST_ALLOWED
