"""Account mail (sign-up and reset links), sent through the outbound relay (OUTBOUND_SMTP_URL).

Ticket mail is threaded into a conversation; account mail belongs to no ticket, so it has its
own small queue (`account_mail`) beside the ticket outbox and shares only its relay. The link's
token is blanked from the stored body once the relay has taken the message: the database never
keeps a usable token in clear after delivery.
"""

from __future__ import annotations

import logging
import re
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.addresses import ascii_address
from doxa.core.config import Settings
from doxa.core.db import is_postgresql, transaction, utcnow
from doxa.core.enums import DeliveryState
from doxa.core.errors import Unavailable
from doxa.core.outbound import Relay
from doxa.core.users.models import AccountMail

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"token=[A-Za-z0-9_\-]+")


def queue_mail(
    db: Session,
    *,
    recipient: str,
    subject: str,
    body: str,
    state: DeliveryState = DeliveryState.QUEUED,
) -> AccountMail:
    """Queue one account message; the edge sends the queue after its commit. A mail recorded
    `not_sent` (the request named no account that may have one) never leaves, nor its link."""
    if state is DeliveryState.NOT_SENT:
        body = _TOKEN.sub("token=(not sent)", body)
    mail = AccountMail(recipient=recipient, subject=subject, body=body, delivery_state=state)
    db.add(mail)
    db.flush()
    return mail


class AccountMailer:
    """Builds links to the account pages and sends queued account mail; one per process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.base_url = settings.public_base_url
        self.sender = settings.support_addresses[0].address
        self.sender_name = settings.support_name
        self.relay = Relay.parse(settings.outbound_smtp_url) if settings.outbound_smtp_url else None
        self._lock = threading.Lock()
        # Sending happens on a thread of its own: a request that queued a mail ends as soon as
        # one that did not (the answer's time must not tell which addresses have accounts).
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="account-mail")
        self._pending = threading.Event()

    def require(self) -> None:
        """Self-service accounts need a relay: the mailbox is the proof of ownership."""
        if self.relay is None:
            raise Unavailable(
                "self sign-up and password reset need outbound mail, and OUTBOUND_SMTP_URL "
                "is not set; ask an administrator to create your account"
            )

    def link(self, page: str, token: str) -> str:
        return f"{self.base_url}/account/{page}?token={token}"

    def send_soon(self) -> None:
        """Have the queue sent on the mailer's thread; returns at once. Calls that come while a
        run is pending fold into it."""
        if self.relay is None or self._pending.is_set():
            return
        self._pending.set()
        self._sender.submit(self._run)

    def _run(self) -> None:
        self._pending.clear()
        try:
            self.send_queued()
        except Exception:  # the next request tries again; never lose the thread to one error
            log.exception("account mail run failed")

    def close(self) -> None:
        self._sender.shutdown(wait=False, cancel_futures=True)

    def send_queued(self, limit: int = 20) -> int:
        """Send queued account mail; a relay that is down leaves it queued for the next call."""
        if self.relay is None:
            return 0
        with self._lock:
            with transaction(self.sessions) as db:
                query = select(AccountMail.id).where(
                    AccountMail.delivery_state == DeliveryState.QUEUED
                )
                ids = list(db.scalars(query.order_by(AccountMail.id).limit(limit)))
            sent = 0
            for mail_id in ids:
                state = self._send_one(self.relay, mail_id)
                if state is DeliveryState.QUEUED:
                    break  # the relay is down: the rest would fail alike; retried next time
                sent += state is DeliveryState.SENT
            return sent

    def _send_one(self, relay: Relay, mail_id: int) -> DeliveryState | None:
        with transaction(self.sessions) as db:
            query = select(AccountMail).where(
                AccountMail.id == mail_id, AccountMail.delivery_state == DeliveryState.QUEUED
            )
            mail = db.scalar(query.with_for_update(skip_locked=True))
            if mail is None:
                return None
            message = self._compose(mail)
            if is_postgresql(db):
                return _deliver(relay, mail, message)  # the row lock spans the send
        # SQLite: never hold its one write lock across the network (as the ticket outbox does).
        with transaction(self.sessions) as db:
            return _deliver(relay, db.get_one(AccountMail, mail_id), message)

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


def _deliver(relay: Relay, mail: AccountMail, message: EmailMessage) -> DeliveryState:
    try:
        relay.send(message)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        mail.delivery_state, mail.delivery_error = DeliveryState.FAILED, str(exc)
    except (smtplib.SMTPNotSupportedError, UnicodeError) as exc:
        # A non-ASCII mailbox and a relay without SMTPUTF8: no retry changes that, and kept
        # queued it would stop every mail behind it (anyone can sign up as `jörg@…`).
        mail.delivery_state, mail.delivery_error = DeliveryState.FAILED, str(exc)
    except (OSError, smtplib.SMTPException) as exc:  # relay down: stays queued
        log.warning("account mail %s not sent yet: %s", mail.id, exc.__class__.__name__)
        mail.delivery_error = str(exc)
    else:
        mail.delivery_state, mail.delivery_error = DeliveryState.SENT, None
    if mail.delivery_state is not DeliveryState.QUEUED:
        mail.body = _TOKEN.sub("token=(sent)", mail.body)
    return mail.delivery_state
