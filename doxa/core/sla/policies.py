"""Which SLA policy applies to a ticket: the first active one, by `position`, whose `when`
matches what the ticket is now.

The facts are the SLA's own small builder over the ticket (the routing rules keep theirs in
doxa/core/routing/): each value is read when a condition first asks for it, so the opening
message's body is loaded only for a policy that reads `body`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doxa.core.routing.conditions import BODY_CHARS, Facts, When, read_when
from doxa.core.sla.calendars import in_business_hours
from doxa.core.sla.models import Calendar, SlaPolicy
from doxa.core.tickets.models import Message, Ticket

TARGETS = ("first_response", "next_response", "resolution")


class _TicketValues(Mapping[str, Any]):
    """A ticket's condition fields, each computed on first use."""

    def __init__(self, db: Session, ticket: Ticket) -> None:
        self._db, self._ticket = db, ticket
        self._readers: dict[str, Callable[[], Any]] = {
            "channel": lambda: ticket.channel,
            "mailbox": lambda: ticket.mailbox,
            "requester.email": lambda: ticket.requester.email,
            "requester.domain": lambda: ticket.requester.email.rpartition("@")[2],
            "subject": lambda: ticket.subject,
            "body": self._body,
            "language": lambda: ticket.language,
            "category": lambda: ticket.category,
            "ai_category": lambda: ticket.ai_category,
            "ai_confidence": lambda: ticket.ai_confidence,
            "priority": lambda: ticket.priority,
            "authenticated": lambda: ticket.authenticated,
            "team_id": lambda: ticket.team_id,
        }
        self._read: dict[str, Any] = {}

    def _body(self) -> str:
        body = func.substr(Message.body, 1, BODY_CHARS)
        first = select(body).where(Message.ticket_id == self._ticket.id).order_by(Message.id)
        return self._db.scalar(first.limit(1)) or ""

    def __getitem__(self, name: str) -> Any:
        if name not in self._read:
            self._read[name] = self._readers[name]()
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)


def ticket_facts(db: Session, ticket: Ticket, *, now: datetime) -> Facts:
    """What a policy's `when` sees of the ticket at `now`."""

    def within(calendar_id: int) -> bool:
        calendar = db.get(Calendar, calendar_id)
        return calendar is not None and in_business_hours(calendar, now)

    return Facts(
        values=_TicketValues(db, ticket), metadata=ticket.meta or {}, in_business_hours=within
    )


def matching_policy(db: Session, ticket: Ticket, *, now: datetime) -> SlaPolicy | None:
    """The first active policy, by position, whose conditions the ticket meets."""
    facts = ticket_facts(db, ticket, now=now)
    for policy, when in _active(db):
        if when.matches(facts):
            return policy
    return None


_ACTIVE = "doxa.sla.active_policies"


def _active(db: Session) -> list[tuple[SlaPolicy, When]]:
    """The active policies with their conditions read, once per transaction: a new ticket's
    clock is looked at after each change that may choose another policy (creation, the
    classification, each rule's action), and reading them each time cost a query and a parse."""
    current = db.get_transaction()
    cached = db.info.get(_ACTIVE)
    if cached is None or cached[0] is not current:
        query = select(SlaPolicy).where(SlaPolicy.active.is_(True))
        policies = db.scalars(query.order_by(SlaPolicy.position, SlaPolicy.id))
        cached = db.info[_ACTIVE] = (current, [(p, read_when(p.when)) for p in policies])
    active: list[tuple[SlaPolicy, When]] = cached[1]
    return active


def forget(db: Session) -> None:
    """After writing policies: the transaction reads them again."""
    db.info.pop(_ACTIVE, None)


def targets(policy: SlaPolicy | None, priority: str) -> dict[str, int]:
    """The policy's targets for a priority, in minutes (empty: nothing to meet)."""
    if policy is None:
        return {}
    return dict((policy.targets or {}).get(str(priority), {}))
