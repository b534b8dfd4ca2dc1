"""Notifications played on an injected clock: the periodic step called by hand at chosen
moments, the real outbox sending to a real SMTP sink."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import EventType, Role
from doxa.core.events import feed
from doxa.core.events.models import Event
from doxa.core.events.record import SYSTEM, Actor, record
from doxa.core.notifications import service as notifications
from doxa.core.notifications.mail import AgentMail
from doxa.core.notifications.models import AgentNotice
from doxa.core.outbox.models import OutboxKind
from doxa.core.outbox.relay import Relay
from doxa.core.outbox.sender import Outbox
from doxa.core.teams.models import Team, TeamMember
from doxa.core.tickets import messages
from doxa.core.tickets.models import Ticket
from doxa.core.tickets.schemas import MessageCreate
from doxa.core.tickets.service import change
from doxa.core.users.models import User
from tests.conftest import MakeTicket, MakeUser
from tests.relays import Sink


@dataclass
class Desk:
    """The notifications step at `now`, the changes that feed it, and the mail it sends."""

    context: Context
    sink: Sink
    outbox: Outbox
    now: datetime

    def run(self, *, after: timedelta = timedelta(0)) -> int:
        """Move the clock on by `after`, then run the step once; the notices queued."""
        self.now += after
        self._readable()
        return notifications.run(self.context.sessions, relay=True, now=lambda: self.now)

    def _readable(self) -> None:
        """Wait until the feed serves the last event written: on PostgreSQL any transaction
        open on the server (another test's, in another database) holds it back a while."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with transaction(self.context.sessions) as db:
                last = db.scalar(select(func.max(Event.id))) or 0
                if feed.latest(db).id >= last:
                    return
            time.sleep(0.05)
        raise AssertionError("the feed did not reach the last event within 10 s")

    def settle(self) -> int:
        """Read the changes made so far, then let their minute pass; the notices queued."""
        self.run()
        return self.run(after=timedelta(minutes=1))

    def send(self) -> list[EmailMessage]:
        """Send every queued item; the mail the relay has got so far."""
        while claimed := self.outbox.claim(100):  # a few at a time to one domain
            for item_id in claimed:
                self.outbox.send(item_id)
        return self.sink.received

    def assign(self, ticket: Ticket, agent: User, *, by: User | None = None) -> None:
        with transaction(self.context.sessions) as db:
            row = db.get_one(Ticket, ticket.id)
            change(db, row, {"assignee_id": agent.id}, actor=Actor.of(by))

    def customer_writes(self, ticket: Ticket, body: str) -> None:
        with transaction(self.context.sessions) as db:
            requester = db.get_one(User, ticket.requester_id)
            data = MessageCreate(body=body)
            messages.post_message(db, ticket.id, data, actor=requester, relay_configured=False)

    def sla(self, ticket: Ticket, kind: EventType, target: str = "first_response") -> None:
        with transaction(self.context.sessions) as db:
            row = db.get_one(Ticket, ticket.id)
            data = {"target": target, "due_at": "2026-11-27T10:00:00+00:00", "state": "breached"}
            record(db, row, kind, actor=SYSTEM, data=data, public=False)

    def team(self, *members: User) -> int:
        with transaction(self.context.sessions) as db:
            team = Team(name="Billing")
            db.add(team)
            db.flush()
            db.add_all(TeamMember(team_id=team.id, user_id=member.id) for member in members)
            return team.id

    def set(self, user: User, **values: object) -> None:
        with transaction(self.context.sessions) as db:
            row = db.get_one(User, user.id)
            for name, value in values.items():
                setattr(row, name, value)

    def notices(self) -> list[AgentNotice]:
        with self.context.sessions() as db:
            return list(db.scalars(select(AgentNotice).order_by(AgentNotice.id)))

    def to(self, user: User) -> list[EmailMessage]:
        return [mail for mail in self.sink.received if mail["To"] == user.email]


@pytest.fixture
def desk(clean: Context, sink: Sink) -> Desk:
    settings = clean.settings.model_copy(update={"outbound_smtp_url": sink.url})
    outbox = Outbox(
        clean.sessions, {OutboxKind.AGENT_MAIL: AgentMail(settings, Relay.parse(sink.url))}
    )
    desk = Desk(clean, sink, outbox, utcnow())
    desk.run()  # the consumer starts at the present: before the test's changes
    return desk


@pytest.fixture
def agent(make_user: MakeUser) -> User:
    return make_user(Role.AGENT)


@pytest.fixture
def ticket(make_ticket: MakeTicket) -> Ticket:
    return make_ticket(subject="Printer on fire")
