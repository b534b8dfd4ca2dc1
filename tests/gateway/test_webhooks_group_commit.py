"""Group commit at the webhook edge, on each database: a first post's store is held, so the
posts sent meanwhile are stored together as the next group (the shape of a busy endpoint).
Keys used once (signatures, Idempotency-Keys, Mailgun tokens) keep their rules inside a group."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx2
from prometheus_client import REGISTRY
from sqlalchemy import event, func, select

from doxa.core.enums import IntakeStatus
from doxa.core.intake.models import IntakeEvent, IntakeKey
from doxa.gateway.accepting import GroupCommitter
from tests.gateway.conftest import Smtp, StartSmtp
from tests.gateway.test_group_commit import Fault, _database_lost_at_commit, holding
from tests.gateway.webhook_support import form_json, mailgun_signed, signed, start_hooks

FORM, MAILGUN = "/api/v1/inbound/form", "/api/v1/inbound/mailgun"
Post = Callable[[], httpx2.Response]  # one request, as sent by a client: gives its response


def _committer(hooks: Smtp) -> GroupCommitter:
    committer: GroupCommitter = hooks.http.app.state.webhooks.lanes.small  # type: ignore[attr-defined]
    return committer


def _form(hooks: Smtp, body: bytes, **headers: str) -> Post:
    signature = signed(body) | headers  # signed now, sent later: one signature per call
    return functools.partial(hooks.http.post, FORM, content=body, headers=signature)


def as_a_group(
    hooks: Smtp, posts: list[Post], fault: Fault | None = None
) -> tuple[list[httpx2.Response], list[int]]:
    """A first post whose store is held, then `posts` concurrently: stored together as the
    group after it (within `fault`). Their answers, and the sizes of the groups stored."""
    first = _form(hooks, form_json(subject="first"))
    with (
        holding(_committer(hooks), *([fault] if fault else [])) as hold,
        ThreadPoolExecutor(len(posts) + 1) as pool,
    ):
        held = pool.submit(first)
        assert hold.entered.wait(30)
        answers = [pool.submit(post) for post in posts]
        hold.wait_for_waiting(len(posts))
        hold.gate.set()
        assert held.result().status_code == 202
        return [answer.result() for answer in answers], hold.sizes


def _groups() -> list[float]:
    """Groups stored so far and the posts in them, as /metrics shows them."""
    name = "doxa_webhook_commit_group_posts"
    return [REGISTRY.get_sample_value(f"{name}_{part}") or 0.0 for part in ("count", "sum")]


def _count(hooks: Smtp, model: Any) -> int:
    with hooks.context.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


class TestGroups:
    def test_posts_sent_together_are_stored_in_one_group_each_with_its_own_event(
        self, hooks: Smtp
    ) -> None:
        posts = [_form(hooks, form_json(subject=f"visitor {n}")) for n in range(6)]
        before = _groups()
        answers, sizes = as_a_group(hooks, posts)
        assert sizes == [1, 6] and [a.status_code for a in answers] == [202] * 6
        assert [now - then for now, then in zip(_groups(), before, strict=True)] == [2, 7]
        ids = [answer.json()["intake_event_id"] for answer in answers]
        events = {event.id: event for event in hooks.settle()}
        assert len(set(ids)) == 6 and {events[i].status for i in ids} == {
            IntakeStatus.TICKET_CREATED
        }
        assert sorted(t.subject for t in hooks.tickets()) == sorted(
            ["first", *(f"visitor {n}" for n in range(6))]
        )

    def test_each_202_comes_after_its_own_row_is_committed(self, hooks: Smtp) -> None:
        def post_and_look(n: int) -> bool:
            answer = _form(hooks, form_json(subject=f"look {n}"))()
            with hooks.context.sessions() as db:  # another connection sees it at once
                return db.get(IntakeEvent, answer.json()["intake_event_id"]) is not None

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(post_and_look, range(40))) == [True] * 40
        assert len(hooks.settle()) == 40

    def test_a_replay_inside_a_group_gets_the_first_answer_and_stores_nothing(
        self, hooks: Smtp
    ) -> None:
        body = form_json(subject="once")
        same = _form(hooks, body)  # the very same request, twice
        answers, sizes = as_a_group(hooks, [same, same, _form(hooks, form_json(subject="other"))])
        assert sizes == [1, 3] and [a.status_code for a in answers] == [202] * 3
        assert answers[0].json() == answers[1].json() != answers[2].json()
        hooks.settle()
        assert sorted(t.subject for t in hooks.tickets()) == ["first", "once", "other"]
        assert _count(hooks, IntakeEvent) == 3

    def test_one_idempotency_key_with_two_bodies_in_a_group_stores_one_and_refuses_the_other(
        self, hooks: Smtp
    ) -> None:
        key = {"Idempotency-Key": "order-17"}
        posts = [_form(hooks, form_json(subject=s), **key) for s in ("mine", "another")]
        answers, _ = as_a_group(hooks, posts)
        assert sorted(a.status_code for a in answers) == [202, 409]
        hooks.settle()
        stored = next(a for a in answers if a.status_code == 202)
        assert len(hooks.tickets()) == 2 and _count(hooks, IntakeEvent) == 2
        with hooks.context.sessions() as db:
            owner = db.scalar(select(IntakeKey.intake_event_id).where(IntakeKey.key == "order-17"))
        assert owner == stored.json()["intake_event_id"]

    def test_a_mailgun_token_replayed_inside_a_group_is_refused(self, hooks: Smtp) -> None:
        fields = mailgun_signed(
            {
                "recipient": "support@example.com",
                "sender": "alice@example.org",
                "from": "Alice <alice@example.org>",
                "subject": "Via Mailgun",
                "body-plain": "Hello",
            }
        )
        post = functools.partial(hooks.http.post, MAILGUN, data=fields)
        answers, sizes = as_a_group(hooks, [post, post])
        assert sizes == [1, 2] and sorted(a.status_code for a in answers) == [200, 401]
        hooks.settle()
        assert sorted(t.subject for t in hooks.tickets()) == ["Via Mailgun", "first"]


@contextmanager
def _transactions(hooks: Smtp, ended: Counter[str]) -> Iterator[None]:
    """Counts the commits and rollbacks of the committing thread (the group's, within it)."""
    thread, armed = threading.get_ident(), True

    def seen(kind: str) -> Callable[[Any], None]:
        def count(_conn: Any) -> None:
            if armed and threading.get_ident() == thread:
                ended[kind] += 1

        return count

    for kind in ("commit", "rollback"):
        event.listen(hooks.context.engine, kind, seen(kind))
    try:
        yield
    finally:
        armed = False  # left listening, disarmed: see test_group_commit._poisoned_insert


def _mailgun_fields() -> dict[str, Any]:
    fields = {"recipient": "support@example.com", "sender": "alice@example.org"}
    fields |= {"from": "Alice <alice@example.org>", "subject": "Via Mailgun", "body-plain": "Hi"}
    return mailgun_signed(fields)


class TestReplays:
    def test_replays_in_a_group_leave_it_and_the_others_are_stored_in_its_one_transaction(
        self, hooks: Smtp, start_smtp: StartSmtp
    ) -> None:
        body, fields = form_json(subject="stored"), _mailgun_fields()
        headers = signed(body) | {"Idempotency-Key": "order-1"}
        first = hooks.http.post(FORM, content=body, headers=headers).json()["intake_event_id"]
        assert hooks.http.post(MAILGUN, data=fields).status_code == 200
        other = start_hooks(start_smtp)  # another process: it never saw them
        again = functools.partial(other.http.post, FORM, content=body, headers=headers)
        replays: list[Post] = [
            again,
            _form(other, form_json(subject="changed"), **{"Idempotency-Key": "order-1"}),
            functools.partial(other.http.post, MAILGUN, data=fields),
            again,
        ]
        posts = [_form(other, form_json(subject=f"new {n}")) for n in range(4)] + replays
        ended: Counter[str] = Counter()
        answers, sizes = as_a_group(other, posts, functools.partial(_transactions, other, ended))
        assert sizes == [1, 8] and ended == {"commit": 1}
        assert [a.status_code for a in answers] == [202] * 4 + [202, 409, 401, 202]
        assert answers[4].json() == answers[7].json() == {"intake_event_id": first}
        other.settle()
        assert sorted(t.subject for t in other.tickets()) == sorted(
            ["stored", "Via Mailgun", "first", *(f"new {n}" for n in range(4))]
        )
        assert _count(other, IntakeEvent) == 7 and _count(other, IntakeKey) == 8

    def test_a_replay_of_what_this_process_stored_is_answered_without_a_group(
        self, hooks: Smtp
    ) -> None:
        stored = _form(hooks, form_json(subject="stored"))
        mailgun = functools.partial(hooks.http.post, MAILGUN, data=_mailgun_fields())
        first = stored()
        assert mailgun().status_code == 200
        before = _groups()
        assert [stored().json() for _ in range(20)] == [first.json()] * 20
        assert [mailgun().status_code for _ in range(20)] == [401] * 20
        assert _groups() == before and _count(hooks, IntakeEvent) == 2


class TestGroupFaults:
    def test_database_lost_during_a_group_gives_each_post_503_and_loses_nothing(
        self, hooks: Smtp
    ) -> None:
        bodies = [form_json(subject=f"in the failing group {n}") for n in range(4)]
        lost = functools.partial(_database_lost_at_commit, hooks)
        answers, sizes = as_a_group(hooks, [_form(hooks, body) for body in bodies], lost)
        assert sizes == [1, 4] and [a.status_code for a in answers] == [503] * 4
        assert all(int(a.headers["retry-after"]) > 0 for a in answers)
        retried = [hooks.http.post(FORM, content=b, headers=signed(b)) for b in bodies]
        assert [a.status_code for a in retried] == [202] * 4  # the senders' retries
        hooks.settle()
        assert sorted(t.subject for t in hooks.tickets()) == sorted(
            ["first", *(f"in the failing group {n}" for n in range(4))]
        )
