"""Account mail (sign-up and reset links), sent through the one outbox like ticket mail.

Account mail belongs to no ticket, so its text waits in `account_mail`; the outbox item says
when and whether it goes. The link's token is blanked from the stored body once the relay has
taken the message (or it has failed for good): the database never keeps a usable token in
clear after delivery.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import Session

from doxa.core.addresses import ascii_address
from doxa.core.config import Settings
from doxa.core.db import utcnow
from doxa.core.enums import DeliveryState
from doxa.core.errors import Unavailable
from doxa.core.outbox import queue
from doxa.core.outbox.models import OutboxItem, OutboxKind
from doxa.core.outbox.relay import Relay
from doxa.core.users.models import AccountMail

_TOKEN = re.compile(r"token=[A-Za-z0-9_\-]+")


def queue_mail(
    db: Session,
    *,
    recipient: str,
    subject: str,
    body: str,
    state: DeliveryState = DeliveryState.QUEUED,
) -> AccountMail:
    """Queue one account message; the edge kicks the outbox after its commit. A mail recorded
    `not_sent` (the request named no account that may have one) never leaves, nor its link; it
    costs the same writes as one that goes, so the answer's time tells nothing."""
    if state is DeliveryState.NOT_SENT:
        body = _TOKEN.sub("token=(not sent)", body)
    mail = AccountMail(recipient=recipient, subject=subject, body=body, delivery_state=state)
    db.add(mail)
    db.flush()
    destination = queue.mail_destination(recipient)
    queue.enqueue(db, OutboxKind.ACCOUNT_MAIL, mail.id, destination=destination, state=state)
    return mail


class AccountMailer:
    """Builds links to the account pages, and says whether account mail can go at all."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.public_base_url
        self.configured = settings.outbound_smtp_url is not None

    def require(self) -> None:
        """Self-service accounts need a relay: the mailbox is the proof of ownership."""
        if not self.configured:
            raise Unavailable(
                "self sign-up and password reset need outbound mail, and OUTBOUND_SMTP_URL "
                "is not set; ask an administrator to create your account"
            )

    def link(self, page: str, token: str) -> str:
        return f"{self.base_url}/account/{page}?token={token}"


class AccountMailCourier:
    """The outbox's courier for account mail."""

    def __init__(self, settings: Settings, relay: Relay) -> None:
        self.sender = settings.support_addresses[0].address
        self.sender_name = settings.support_name
        self.relay = relay

    def prepare(self, db: Session, item: OutboxItem) -> Callable[[], None]:
        return functools.partial(
            self.relay.send, self._compose(db.get_one(AccountMail, item.ref_id))
        )

    def settle(self, db: Session, item: OutboxItem, receipt: object) -> None:
        mail = db.get_one(AccountMail, item.ref_id)
        mail.delivery_state, mail.delivery_error = item.state, item.last_error
        if item.state is not DeliveryState.QUEUED:
            mail.body = _TOKEN.sub("token=(sent)", mail.body)

    def _compose(self, mail: AccountMail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = Address(display_name=self.sender_name, addr_spec=self.sender)
        message["To"] = ascii_address(mail.recipient)  # stored in Unicode (core.addresses)
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid(domain=self.sender.partition("@")[2] or None)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: nobody should answer it
        message.set_content(mail.body)
        return message
