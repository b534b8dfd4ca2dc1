"""The service-level clock on a ticket: which policy applies, its due times, pauses.

Three targets run on a ticket under a policy, each a due time column:

- first response (`first_response_due_at`): from creation until the first public staff reply;
  met at once for a ticket staff opened;
- next response (`next_response_due_at`): from the first customer message no public staff
  reply has answered (`awaiting_since`) until that reply; each such cycle warns and breaches
  once;
- resolution (`resolution_due_at`): until `resolved`.

The clock stops while the ticket is `pending`, `resolved` or `closed` (`sla_paused_at`); when it
runs again every due time moves by the business time it stood, so a reopened ticket resumes
resolution without the time spent resolved. A due time cleared is a target met (or not running).

What the sweep has fired is kept in `sla_warned` as `warning:<target>` / `breached:<target>`
(next response's are dropped when a reply starts a new cycle); `sla_breached` lists the targets
ever missed. `sla_due_at` is the soonest due time of a running target (the list's sort),
`sla_alarm_at` the next moment the sweep must look (a warning or a due time not yet fired).

Every function takes `now` (tests pass their own); without it, `time_source()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from doxa.core.db import utcnow
from doxa.core.enums import SlaState, Status
from doxa.core.sla.calendars import add_business_minutes, business_minutes_between
from doxa.core.sla.models import Calendar, SlaPolicy
from doxa.core.sla.policies import matching_policy, targets
from doxa.core.tickets.models import Ticket

# The time the clock reads when a caller gives none; tests of the API replace it.
time_source: Callable[[], datetime] = utcnow

STOPPED = frozenset({Status.PENDING, Status.RESOLVED, Status.CLOSED})
FINISHED = frozenset({Status.RESOLVED, Status.CLOSED})
# A change to these fields chooses the policy again (SPEC: priority, team, channel; and the
# category, so that the AI's label or an agent's correction chooses the deadline too).
REAPPLY = frozenset({"priority", "team_id", "channel", "category"})
DUE = {
    "first_response": "first_response_due_at",
    "next_response": "next_response_due_at",
    "resolution": "resolution_due_at",
}
WARNING, BREACHED = "warning", "breached"


@dataclass(frozen=True, slots=True)
class Terms:
    """The policy a ticket is under and the calendar its time counts in (None: 24/7)."""

    policy: SlaPolicy
    calendar: Calendar | None

    def minutes(self, priority: str) -> dict[str, int]:
        return targets(self.policy, priority)


def terms_of(db: Session, ticket: Ticket) -> Terms | None:
    if ticket.sla_policy_id is None:
        return None
    policy = db.get_one(SlaPolicy, ticket.sla_policy_id)
    calendar = db.get(Calendar, policy.calendar_id) if policy.calendar_id is not None else None
    return Terms(policy, calendar)


def start(db: Session, ticket: Ticket, *, by_staff: bool, now: datetime | None = None) -> None:
    """A new ticket: choose its policy and start its targets; staff opening it is its first
    response, a customer opening it awaits one."""
    now = now or time_source()
    if by_staff:
        ticket.first_response_at = now
    else:
        ticket.awaiting_since = now
    _apply(db, ticket, now, old_priority=str(ticket.priority), fresh=True)


def follow(
    db: Session,
    ticket: Ticket,
    changed: Mapping[str, Iterable[object]] | Iterable[str],
    *,
    now: datetime | None = None,
) -> None:
    """After a change to the ticket's fields (names, or `{field: [before, after]}`): stop or
    run the clock (status), choose the policy again (priority, team, channel, category)."""
    names = set(changed)
    if not names & (REAPPLY | {"status"}):
        return
    now = now or time_source()
    if "status" in names:
        if ticket.status is Status.RESOLVED:
            ticket.resolved_at = now
        _follow_status(db, ticket, now)
    if names & REAPPLY:
        old = str(ticket.priority)
        if isinstance(changed, Mapping) and "priority" in changed:
            old = str(next(iter(changed["priority"])))
        _apply(db, ticket, now, old_priority=old)


def responded(db: Session, ticket: Ticket, *, now: datetime | None = None) -> None:
    """A public staff reply: the first response if none came yet, and the answer to what the
    customer wrote since the last one (a new next-response cycle begins with their next)."""
    now = now or time_source()
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.first_response_due_at = None
    ticket.awaiting_since = None
    ticket.next_response_due_at = None
    ticket.sla_warned = [m for m in ticket.sla_warned or [] if not m.endswith(":next_response")]
    refresh(db, ticket, now)


def customer_wrote(db: Session, ticket: Ticket, *, now: datetime | None = None) -> None:
    """A customer's message: the next response counts from the first one not yet answered
    (the first response covers what came before it)."""
    now = now or time_source()
    if ticket.awaiting_since is not None:
        return
    ticket.awaiting_since = now
    terms = terms_of(db, ticket)
    if terms is None or ticket.first_response_at is None:
        return
    minutes = terms.minutes(ticket.priority).get("next_response")
    if minutes is not None:
        begin = ticket.sla_paused_at or now  # stopped: it counts once the clock runs
        ticket.next_response_due_at = add_business_minutes(terms.calendar, begin, minutes)
    refresh(db, ticket, now)


def _follow_status(db: Session, ticket: Ticket, now: datetime) -> None:
    stopped = ticket.status in STOPPED
    if stopped and ticket.sla_paused_at is None:
        ticket.sla_paused_at = now
    elif not stopped and ticket.sla_paused_at is not None:
        terms = terms_of(db, ticket)
        calendar = terms.calendar if terms else None
        stood = business_minutes_between(calendar, ticket.sla_paused_at, now)
        for column in DUE.values():
            due = getattr(ticket, column)
            if due is not None and stood:
                setattr(ticket, column, add_business_minutes(calendar, due, stood))
        ticket.sla_paused_at = None
    refresh(db, ticket, now)


def _apply(
    db: Session, ticket: Ticket, now: datetime, *, old_priority: str, fresh: bool = False
) -> None:
    """Choose the policy and set each target's due time. A target already counting keeps the
    business time it has used: its due time is what remains of the new target from now."""
    policy = matching_policy(db, ticket, now=now)
    if policy is None:
        if ticket.sla_policy_id is not None or fresh:
            _clear(ticket)
        return
    old = None if fresh else terms_of(db, ticket)
    old_minutes = old.minutes(old_priority) if old else {}
    ticket.sla_policy_id = policy.id
    new = Terms(policy, db.get(Calendar, policy.calendar_id) if policy.calendar_id else None)
    minutes = new.minutes(ticket.priority)
    since = ticket.sla_paused_at or now  # stopped: the time used is what it was then
    for target, column in DUE.items():
        due = getattr(ticket, column)
        wanted = minutes.get(target) if _counts(ticket, target) else None
        if wanted is None:
            due = None
        elif old is not None and due is not None and target in old_minutes:
            same = old.policy.id == policy.id and old_minutes[target] == wanted
            if not same:
                used = old_minutes[target] - business_minutes_between(old.calendar, since, due)
                due = add_business_minutes(new.calendar, since, wanted - used)
        else:
            due = add_business_minutes(new.calendar, _began(ticket, target, since, fresh), wanted)
        setattr(ticket, column, due)
    refresh(db, ticket, now)


def _counts(ticket: Ticket, target: str) -> bool:
    if target == "first_response":
        return ticket.first_response_at is None
    if target == "next_response":
        return ticket.awaiting_since is not None and ticket.first_response_at is not None
    return True


def _began(ticket: Ticket, target: str, since: datetime, fresh: bool) -> datetime:
    """When a target newly under a policy started counting (pauses before it are not known)."""
    if fresh:
        return since
    if target == "next_response" and ticket.awaiting_since is not None:
        return ticket.awaiting_since
    return ticket.created_at or since


def _clear(ticket: Ticket) -> None:
    ticket.sla_policy_id = None
    ticket.sla_state = None
    for column in DUE.values():
        setattr(ticket, column, None)
    ticket.sla_due_at = ticket.sla_alarm_at = None
    ticket.sla_breached, ticket.sla_warned = [], []


def running(ticket: Ticket) -> dict[str, datetime]:
    """The targets counting now, with their due times."""
    if ticket.sla_policy_id is None or ticket.status in STOPPED:
        return {}
    found = {target: getattr(ticket, column) for target, column in DUE.items()}
    return {target: due for target, due in found.items() if due is not None}


def warn_moment(terms: Terms, due: datetime, minutes: int) -> datetime:
    """When `warn_at` of a target's business time has passed (its due time less the rest)."""
    return add_business_minutes(terms.calendar, due, -(1 - terms.policy.warn_at) * minutes)


def alarms(terms: Terms, ticket: Ticket) -> list[tuple[datetime, str, str]]:
    """What the sweep has still to fire for the running targets: (moment, kind, target), the
    warning before the breach."""
    fired = set(ticket.sla_warned or [])
    minutes = terms.minutes(ticket.priority)
    found = []
    for target, due in running(ticket).items():
        unwarned = f"{WARNING}:{target}" not in fired and f"{BREACHED}:{target}" not in fired
        if unwarned and target in minutes:
            found.append((warn_moment(terms, due, minutes[target]), WARNING, target))
        if f"{BREACHED}:{target}" not in fired:
            found.append((due, BREACHED, target))
    return sorted(found)


def refresh(db: Session, ticket: Ticket, now: datetime, terms: Terms | None = None) -> None:
    """Recompute the ticket's state, soonest due time and next alarm from its due times."""
    terms = terms or terms_of(db, ticket)
    if terms is None:
        _clear(ticket)
        return
    counting = running(ticket)
    ticket.sla_due_at = min(counting.values(), default=None)
    ticket.sla_alarm_at = min((moment for moment, _, _ in alarms(terms, ticket)), default=None)
    fired = set(ticket.sla_warned or [])
    if ticket.sla_breached:
        ticket.sla_state = SlaState.BREACHED
    elif ticket.status is Status.PENDING:
        ticket.sla_state = SlaState.PAUSED
    elif not counting:
        ticket.sla_state = SlaState.MET
    elif any(f"{WARNING}:{target}" in fired for target in counting):
        ticket.sla_state = SlaState.WARNING
    else:
        ticket.sla_state = SlaState.OK
