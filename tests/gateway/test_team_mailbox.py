"""A team's support address: mail to it (SMTP or a provider's post) opens the ticket in that
team without a rule, beside the address's category pin."""

from __future__ import annotations

from sqlalchemy import select

from doxa.core.enums import Role
from doxa.core.events.models import Event
from tests.conftest import MakeUser
from tests.gateway.conftest import Smtp, StartSmtp, message
from tests.gateway.webhook_support import CONFIGURED, mailgun_signed, start_hooks

BOXES = "support@example.com,billing@example.com=billing"


def _team(smtp: Smtp, make_user: MakeUser, **fields: object) -> int:
    admin = make_user(Role.ADMIN)
    token = smtp.context.tokens.issue(admin.id, admin.token_version)
    response = smtp.http.post(
        "/api/v1/teams",
        json={"name": "Billing", **fields},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    team_id: int = response.json()["id"]
    return team_id


class TestTeamMailbox:
    def test_mail_to_the_teams_address_lands_in_the_team(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        team = _team(smtp, make_user, mailbox="billing@example.com")
        assert smtp.send(message("Charged twice"), to="billing@example.com") == {}
        assert smtp.send(message("VPN down"), to="support@example.com") == {}
        smtp.settle()
        # two workers may store them in either order
        billing, support = sorted(smtp.tickets(), key=lambda t: t.mailbox or "")
        assert (billing.team_id, billing.category, billing.mailbox) == (
            team,
            "billing",
            "billing@example.com",
        )
        assert (support.team_id, support.category) == (None, None)
        with smtp.context.sessions() as db:
            history = select(Event.type).where(Event.ticket_id == billing.id)
            events = db.scalars(history.order_by(Event.sequence)).all()
        assert events[0] == "ticket.created"  # the team is part of the ticket as made

    def test_a_plus_address_of_the_teams_mailbox_lands_there_too(
        self, smtp: Smtp, make_user: MakeUser
    ) -> None:
        team = _team(smtp, make_user, mailbox="billing@example.com")
        assert smtp.send(message("Invoice"), to="billing+eu@example.com") == {}
        smtp.settle()
        [ticket] = smtp.tickets()
        assert ticket.team_id == team

    def test_a_providers_post_to_the_teams_address_lands_there(
        self, start_smtp: StartSmtp, make_user: MakeUser
    ) -> None:
        hooks = start_hooks(
            start_smtp, support_addresses=f"{CONFIGURED['support_addresses']},{BOXES.split(',')[1]}"
        )
        team = _team(hooks, make_user, mailbox="billing@example.com")
        fields = {
            "recipient": "billing@example.com",
            "sender": "alice@example.org",
            "body-mime": message("Refund please", to="billing@example.com"),
        }
        assert (
            hooks.http.post("/api/v1/inbound/mailgun", data=mailgun_signed(fields)).status_code
            == 200
        )
        hooks.settle()
        [ticket] = hooks.tickets()
        assert (ticket.team_id, ticket.category) == (team, "billing")
