"""Who is mailed, when, and how often: the notifications step on an injected clock."""

from __future__ import annotations

from datetime import timedelta

from doxa.core.enums import DeliveryState, EventType, Role
from doxa.core.notifications.models import NoticeState
from doxa.core.notifications.service import HOURLY_CAP, OVER_CAP
from doxa.core.tickets.models import Ticket
from doxa.core.users.models import User
from tests.conftest import MakeTicket, MakeUser
from tests.core.notifications.conftest import Desk

MINUTE = timedelta(seconds=60)


class TestAssigned:
    def test_the_new_assignee_gets_one_mail_with_the_reference(
        self, desk: Desk, agent: User, make_user: MakeUser, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent, by=make_user(Role.ADMIN))
        desk.run()  # reads the change: its minute starts
        assert desk.run(after=timedelta(seconds=59)) == 0
        assert desk.run(after=timedelta(seconds=2)) == 1
        [mail] = desk.send()
        assert mail["To"] == agent.email
        assert mail["Subject"] == f"[#{ticket.id}] Printer on fire"
        assert "Assigned to you." in mail.get_content()
        assert desk.notices()[0].message_id == mail["Message-ID"].strip("<>")

    def test_taking_a_ticket_oneself_mails_nobody(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent, by=agent)
        assert desk.settle() == 0
        assert desk.notices() == []


class TestCustomerWrites:
    def test_the_assignee_gets_the_customers_new_text(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent)
        desk.settle()
        desk.send()
        desk.customer_writes(ticket, "It is still smoking, please hurry.")
        desk.settle()
        mail = desk.send()[-1]
        assert mail["To"] == agent.email
        assert "The customer wrote:" in mail.get_content()
        assert "It is still smoking, please hurry." in mail.get_content()

    def test_an_unassigned_ticket_mails_nobody(self, desk: Desk, ticket: Ticket) -> None:
        desk.customer_writes(ticket, "Anyone there?")
        assert desk.settle() == 0


class TestSla:
    def test_a_breach_on_an_unassigned_team_ticket_mails_each_member(
        self, desk: Desk, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        ann, bob, gone = make_user(Role.AGENT), make_user(Role.ADMIN), make_user(Role.AGENT)
        desk.set(gone, is_active=False)
        ticket = make_ticket(team_id=desk.team(ann, bob, gone))
        desk.sla(ticket, EventType.SLA_BREACHED, "resolution")
        assert desk.settle() == 2
        desk.send()
        for member in (ann, bob):
            [mail] = desk.to(member)
            assert "SLA breached: resolution was due at" in mail.get_content()
        assert desk.to(gone) == []

    def test_a_warning_goes_to_the_assignee_only(
        self, desk: Desk, agent: User, make_user: MakeUser, make_ticket: MakeTicket
    ) -> None:
        member = make_user(Role.AGENT)
        ticket = make_ticket(team_id=desk.team(member))
        desk.assign(ticket, agent, by=agent)
        desk.sla(ticket, EventType.SLA_WARNING)
        desk.settle()
        [mail] = desk.send()
        assert mail["To"] == agent.email
        assert "SLA warning: first response is due at" in mail.get_content()


class TestPreferences:
    def test_an_agent_who_turned_a_kind_off_gets_none_of_it(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.set(agent, notifications={"assigned": False})
        desk.assign(ticket, agent)
        desk.sla(ticket, EventType.SLA_WARNING)
        desk.settle()
        [mail] = desk.send()  # the SLA warning, which they still want
        assert "Assigned to you." not in mail.get_content()
        desk.set(agent, notifications={"assigned": False, "sla": False})
        desk.sla(ticket, EventType.SLA_BREACHED)
        assert desk.settle() == 0
        assert len(desk.send()) == 1

    def test_a_client_is_never_mailed(
        self, desk: Desk, make_user: MakeUser, ticket: Ticket
    ) -> None:
        desk.assign(ticket, make_user(Role.CLIENT))
        assert desk.settle() == 0


class TestCheckedAtSend:
    def test_an_agent_deactivated_after_queueing_is_not_mailed(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent)
        assert desk.settle() == 1
        desk.set(agent, is_active=False)
        assert desk.send() == []
        [notice] = desk.notices()
        assert notice.state is NoticeState.NOT_SENT
        assert notice.delivery_error == "the recipient is deactivated"

    def test_turning_it_off_after_queueing_stops_it(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent)
        desk.settle()
        desk.set(agent, notifications={"assigned": False})
        assert desk.send() == []
        assert desk.notices()[0].state is NoticeState.NOT_SENT


class TestOneMailAMinute:
    def test_three_changes_within_a_minute_make_one_mail(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent)
        desk.run()
        desk.customer_writes(ticket, "Smoke everywhere.")
        desk.run(after=timedelta(seconds=20))
        desk.sla(ticket, EventType.SLA_WARNING)
        assert desk.run(after=timedelta(seconds=39)) == 0  # 59 s after the first change
        assert desk.run(after=timedelta(seconds=2)) == 1
        [mail] = desk.send()
        text = mail.get_content()
        assert "Assigned to you." in text and "Smoke everywhere." in text
        assert "SLA warning" in text

    def test_a_change_after_the_mail_was_queued_makes_the_next_one(
        self, desk: Desk, agent: User, ticket: Ticket
    ) -> None:
        desk.assign(ticket, agent)
        desk.settle()
        desk.customer_writes(ticket, "Hello again.")
        desk.settle()
        assert len(desk.send()) == 2


class TestHourlyCap:
    def test_the_31st_mail_in_an_hour_is_not_sent(
        self, desk: Desk, agent: User, make_ticket: MakeTicket
    ) -> None:
        for _ in range(HOURLY_CAP + 1):
            desk.assign(make_ticket(), agent)
        assert desk.settle() == HOURLY_CAP
        assert len(desk.send()) == HOURLY_CAP
        last = desk.notices()[-1]
        assert (last.state, last.delivery_error) == (NoticeState.NOT_SENT, OVER_CAP)
        assert all(n.state is NoticeState.SENT for n in desk.notices()[:-1])

    def test_an_hour_later_mail_goes_again(
        self, desk: Desk, agent: User, make_ticket: MakeTicket
    ) -> None:
        for _ in range(HOURLY_CAP):
            desk.assign(make_ticket(), agent)
        desk.settle()
        desk.assign(make_ticket(), agent)
        desk.run(after=timedelta(minutes=59))
        assert desk.run(after=MINUTE) == 1


def test_the_outbox_item_of_a_withheld_mail_says_not_sent(
    desk: Desk, agent: User, ticket: Ticket
) -> None:
    from sqlalchemy import select

    from doxa.core.outbox.models import OutboxItem

    desk.assign(ticket, agent)
    desk.settle()
    desk.set(agent, role=Role.CLIENT)
    desk.send()
    with desk.context.sessions() as db:
        item = db.scalars(select(OutboxItem)).one()
    assert (item.state, item.last_error) == (
        DeliveryState.NOT_SENT,
        "the recipient is no longer staff",
    )
