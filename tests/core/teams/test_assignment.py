"""Assignment as SPEC says, sentence by sentence, through tickets.service.change (a ticket
landing in a team) and the queue job."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from doxa.core.context import Context
from doxa.core.db import transaction, utcnow
from doxa.core.enums import Assignment, Role, Status
from doxa.core.events.record import SYSTEM
from doxa.core.models import Team, Ticket, User
from doxa.core.teams import assignment
from doxa.core.tickets import service as tickets
from tests.conftest import MakeUser
from tests.core.teams.conftest import (
    MakeTeam,
    add_tickets,
    assignees,
    land,
    system_assignments,
)


def _set(context: Context, user: User, **values: object) -> None:
    with transaction(context.sessions) as db:
        db.execute(update(User).where(User.id == user.id).values(**values))


class TestRoundRobin:
    def test_tickets_go_to_the_members_in_turn(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b, c = (make_user(Role.AGENT) for _ in range(3))
        team = make_team([c, a, b])
        ids = add_tickets(clean.sessions, make_user(), 5)
        assert land(clean.sessions, ids, team) == [a.id, b.id, c.id, a.id, b.id]

    def test_the_turn_goes_on_after_the_last_assigned_member(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b, c = (make_user(Role.AGENT) for _ in range(3))
        team = make_team([a, b, c])
        with transaction(clean.sessions) as db:
            db.execute(update(Team).values(last_assignee_id=b.id))
        ids = add_tickets(clean.sessions, make_user(), 2)
        assert land(clean.sessions, ids, team) == [c.id, a.id]
        with clean.sessions() as db:
            assert db.get_one(Team, team.id).last_assignee_id == a.id

    def test_full_and_away_members_are_skipped_in_turn(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b, c = (make_user(Role.AGENT) for _ in range(3))
        team = make_team([a, b, c], capacity=1)
        add_tickets(clean.sessions, make_user(), 1, assignee=a)  # a is full
        _set(clean, b, available=False)
        ids = add_tickets(clean.sessions, make_user(), 2)
        assert land(clean.sessions, ids, team) == [c.id, None]  # the second waits

    def test_tickets_landing_one_by_one_are_spread_evenly(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        agents = [make_user(Role.AGENT) for _ in range(4)]
        team = make_team(agents)
        ids = add_tickets(clean.sessions, make_user(), 100)
        for ticket_id in ids:  # a transaction each, as tickets arrive
            land(clean.sessions, [ticket_id], team)
        assert Counter(assignees(clean.sessions, ids)) == {agent.id: 25 for agent in agents}
        assert Counter(system_assignments(clean.sessions).values()) == {1: 100}


class TestLeastOpen:
    def test_the_member_with_the_fewest_open_tickets_in_every_team_gets_it(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b = make_user(Role.AGENT), make_user(Role.AGENT)
        team = make_team([a, b], assignment=Assignment.LEAST_OPEN)
        elsewhere = make_team([a, b], assignment=Assignment.MANUAL)
        requester = make_user()
        add_tickets(clean.sessions, requester, 2, assignee=a, team=elsewhere)
        add_tickets(clean.sessions, requester, 1, assignee=b, status=Status.NEW)
        add_tickets(clean.sessions, requester, 3, assignee=b, status=Status.PENDING)  # not open
        ids = add_tickets(clean.sessions, requester, 3)
        assert land(clean.sessions, ids, team) == [b.id, a.id, b.id]

    def test_a_tie_goes_to_the_member_assigned_longest_ago_never_first(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b, c = (make_user(Role.AGENT) for _ in range(3))
        team = make_team([a, b, c], assignment=Assignment.LEAST_OPEN)
        _set(clean, a, last_assigned_at=utcnow() - timedelta(hours=1))
        _set(clean, b, last_assigned_at=utcnow() - timedelta(hours=2))
        ids = add_tickets(clean.sessions, make_user(), 3)
        assert land(clean.sessions, ids, team) == [c.id, b.id, a.id]

    def test_the_queue_job_breaks_ties_by_who_it_assigned_longest_ago(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b = make_user(Role.AGENT), make_user(Role.AGENT)
        _set(clean, a, last_assigned_at=utcnow() - timedelta(hours=2))
        _set(clean, b, last_assigned_at=utcnow() - timedelta(hours=1))
        add_tickets(clean.sessions, make_user(), 1, assignee=b)
        team = make_team([a, b], assignment=Assignment.LEAST_OPEN)
        ids = add_tickets(clean.sessions, make_user(), 2, team=team)
        assert assignment.assign_waiting(clean.sessions) == 2
        assert assignees(clean.sessions, ids) == [a.id, b.id]  # a was assigned just now


class TestWhoMayTakeATicket:
    def test_only_active_available_staff_members_below_capacity(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        away, gone, client, full, free = (
            make_user(Role.AGENT),
            make_user(Role.AGENT, active=False),
            make_user(Role.CLIENT),
            make_user(Role.ADMIN),
            make_user(Role.ADMIN),
        )
        _set(clean, away, available=False)
        team = make_team([away, gone, client, full, free], capacity=2)
        add_tickets(clean.sessions, make_user(), 2, assignee=full)
        ids = add_tickets(clean.sessions, make_user(), 3)
        assert land(clean.sessions, ids, team) == [free.id, free.id, None]

    def test_capacity_counts_open_tickets_in_every_team(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b = make_user(Role.AGENT), make_user(Role.AGENT)
        billing = make_team([a, b], capacity=2)
        sales = make_team([a], capacity=2)
        land(clean.sessions, add_tickets(clean.sessions, make_user(), 2), sales)  # a is full
        ids = add_tickets(clean.sessions, make_user(), 3)
        assert land(clean.sessions, ids, billing) == [b.id, b.id, None]

    def test_a_manual_team_assigns_nobody(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        team = make_team([make_user(Role.AGENT)], assignment=Assignment.MANUAL)
        assert land(clean.sessions, add_tickets(clean.sessions, make_user(), 1), team) == [None]


class TestQueue:
    def test_room_made_by_a_resolved_ticket_goes_to_the_oldest_waiting(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        agent = make_user(Role.AGENT)
        team = make_team([agent], capacity=1)
        first, *waiting = add_tickets(clean.sessions, make_user(), 3)
        assert land(clean.sessions, [first, *waiting], team) == [agent.id, None, None]
        with transaction(clean.sessions) as db:
            done = db.get_one(Ticket, first)
            tickets.change(db, done, {"status": Status.RESOLVED}, actor=SYSTEM)
        assert assignees(clean.sessions, waiting) == [agent.id, None]

    def test_the_queue_job_assigns_when_a_member_comes_back(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b = make_user(Role.AGENT), make_user(Role.AGENT)
        _set(clean, a, available=False)
        _set(clean, b, available=False)
        team = make_team([a, b], capacity=2)
        ids = add_tickets(clean.sessions, make_user(), 5)
        assert land(clean.sessions, ids, team) == [None] * 5  # waiting in the team's queue
        assert assignment.assign_waiting(clean.sessions) == 0
        _set(clean, b, available=True)
        assert assignment.assign_waiting(clean.sessions) == 2
        assert assignees(clean.sessions, ids) == [b.id, b.id, None, None, None]
        assert assignment.assign_waiting(clean.sessions) == 0  # b is full

    def test_the_queue_job_takes_members_in_turn_oldest_ticket_first(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        a, b, c = (make_user(Role.AGENT) for _ in range(3))
        team = make_team([a, b, c])
        ids = add_tickets(clean.sessions, make_user(), 7, team=team)
        assert assignment.assign_waiting(clean.sessions) == 7
        assert assignees(clean.sessions, ids) == [a.id, b.id, c.id] * 2 + [a.id]

    def test_the_queue_job_spreads_1000_waiting_tickets_250_each(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        agents = [make_user(Role.AGENT) for _ in range(4)]
        team = make_team(agents)
        ids = add_tickets(clean.sessions, make_user(), 1000, team=team)
        assert assignment.assign_waiting(clean.sessions) == 1000
        assert Counter(assignees(clean.sessions, ids)) == {agent.id: 250 for agent in agents}
        assert Counter(system_assignments(clean.sessions).values()) == {1: 1000}


class TestOneAssignerAtATime:
    @pytest.mark.timing
    def test_a_placement_in_another_team_waits_for_the_first_to_commit(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        agent = make_user(Role.AGENT)
        billing, sales = make_team([agent], capacity=1), make_team([agent], capacity=1)
        add_tickets(clean.sessions, make_user(), 1, team=billing)
        [other] = add_tickets(clean.sessions, make_user(), 1, team=sales)

        def drain_sales() -> int:
            with transaction(clean.sessions) as db:
                return assignment.drain(db, sales.id, limit=1)

        with clean.sessions() as first, ThreadPoolExecutor(1) as pool:
            assert assignment.drain(first, billing.id, limit=1) == 1
            second = pool.submit(drain_sales)
            time.sleep(0.5)
            assert not second.done()  # capacity spans teams: one assigner at a time
            first.commit()
            assert second.result(timeout=10) == 0  # the agent is full now
        assert assignees(clean.sessions, [other]) == [None]

    def test_a_ticket_landing_while_another_assigns_waits_for_the_queue_job(
        self, clean: Context, make_user: MakeUser, make_team: MakeTeam
    ) -> None:
        if not clean.settings.on_postgresql:
            pytest.skip("SQLite: the second writer waits for the first, so it never meets the lock")
        agent = make_user(Role.AGENT)
        billing, sales = make_team([agent]), make_team([agent])
        add_tickets(clean.sessions, make_user(), 1, team=billing)
        [landing] = add_tickets(clean.sessions, make_user(), 1)
        with clean.sessions() as first:
            assert assignment.drain(first, billing.id, limit=1) == 1
            assert land(clean.sessions, [landing], sales) == [None]  # never waits for the lock
            first.commit()
        assert assignment.assign_waiting(clean.sessions) == 1
        assert assignees(clean.sessions, [landing]) == [agent.id]
