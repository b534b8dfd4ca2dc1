"""The webhook edge's accept step, per endpoint: authenticate, check, store the raw body, commit.

The same contract as the SMTP edge: the raw body is committed to intake before any 2xx, and
processing happens afterwards on the intake worker. Posts are stored in groups (see
accepting.py), with the keys they may use once. A lost database is `Unavailable` (503 with
Retry-After); the sender retries and nothing it was told was accepted is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from doxa import metrics
from doxa.core.config import Settings
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.errors import (
    Conflict,
    InvalidInput,
    PermissionDenied,
    Rejected,
    Unauthenticated,
    Unavailable,
)
from doxa.core.intake import keys
from doxa.core.intake.pipeline import Pipeline, Submission
from doxa.gateway.accepting import Lanes, NotStored, Repeated
from doxa.gateway.webhooks import auth
from doxa.gateway.webhooks.bodies import first_fields, read_form
from doxa.gateway.webhooks.forms import form_post
from doxa.gateway.webhooks.providers import (
    Envelope,
    mailgun_envelope,
    postmark_envelope,
    sendgrid_envelope,
)
from doxa.runtime.pacing import Pacer
from doxa.runtime.threads import Background, on_thread

log = logging.getLogger(__name__)
MAX_KEY_CHARS = 255
PURGE_EVERY_SECONDS = 3600.0
Headers = Mapping[str, str]
MAILGUN_SIGNED = ("timestamp", "token", "signature")  # as `auth.mailgun_signature` takes them


@dataclass(frozen=True, slots=True)
class Post:
    """A checked post waiting for its group's commit: what to store, and the keys it uses."""

    item: Submission
    claims: tuple[keys.Claim, ...] = ()
    replay_refused: bool = False  # a key used before is a replayed request, not a retry

    @property
    def size(self) -> int:
        return len(self.item.raw)

    def submission(self) -> Submission:
        return self.item

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Stored:
    """The event that answers the post, and whether it still waits to be processed."""

    event_id: int
    waiting: bool


class WebhookIntake:
    """Checks each endpoint's posts (`form`, `mailgun`, ...: CPU only, no database) and
    stores them (`store`, on the app's loop)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        submit: Callable[[int, int], object],
        pacer: Pacer | None = None,
    ) -> None:
        self.settings, self.sessions, self.pipeline = settings, sessions, pipeline
        self.pacer = pacer or Pacer()  # counts the posts being answered; processing gives way
        self.lanes = Lanes(
            sessions, pipeline, submit=submit, committed=metrics.webhook_group_committed
        )
        self._purge_at = 0.0  # keys expire after a day; forgotten at most hourly
        self._purging = Background()

    async def store(self, post: Post) -> Stored:
        """Commit the post; a repeated key gets the first answer (or 401 when refused)."""
        channel = post.item.channel.value
        try:
            # Shielded: a client that leaves does not take its post out of a group being stored.
            accepted = await asyncio.shield(self.lanes.enqueue(post))
        except (Repeated, Conflict) as repeat:
            if post.replay_refused:
                raise Unauthenticated("this token was used before: a replayed request") from None
            if isinstance(repeat, Conflict):
                raise
            metrics.intake_received(channel, IntakeStatus.DUPLICATE.value)
            return Stored(repeat.first, waiting=False)  # a retry or a replay: nothing new stored
        except (SQLAlchemyError, NotStored) as exc:
            metrics.intake_received(channel, "unavailable")
            raise Unavailable("could not store the post just now; retry shortly") from exc
        metrics.intake_received(channel, accepted.status.value)
        if time.monotonic() >= self._purge_at:  # in the background: no post waits for it
            self._purge_at = time.monotonic() + PURGE_EVERY_SECONDS
            self._purging.start(lambda: on_thread(self._purge))
        return Stored(accepted.id, waiting=accepted.status is IntakeStatus.RECEIVED)

    def _purge(self) -> None:
        try:
            with transaction(self.sessions) as db:
                keys.purge(db)
        except SQLAlchemyError as exc:  # tried again in an hour; the post is stored
            log.warning("could not forget expired webhook keys: %s", exc.__class__.__name__)

    def form(self, headers: Headers, raw: bytes) -> Post:
        """A signed form post; a repeated signature or Idempotency-Key gets the first answer."""
        secret = auth.required(self.settings.webhook_secret, "WEBHOOK_SECRET")
        signature = auth.form_signature(secret, headers, raw)
        content_type = headers.get("content-type")
        post = form_post(read_form(raw, content_type))
        idempotency_key = headers.get("idempotency-key", "").strip()
        if len(idempotency_key) > MAX_KEY_CHARS:
            raise InvalidInput(f"Idempotency-Key: at most {MAX_KEY_CHARS} characters")
        digest = hashlib.sha256(raw).hexdigest()
        item = Submission(
            channel=Channel.FORM,
            raw=raw,
            recipients=[],
            envelope_from=post.email,
            extra={
                "content_type": content_type,
                "fields": post.metadata,
                "idempotency_key": idempotency_key or None,
            },
        )
        claims = [keys.Claim(keys.SIGNATURE, signature, digest)]
        if idempotency_key:
            claims.append(keys.Claim(keys.IDEMPOTENCY, idempotency_key, digest))
        return Post(item, tuple(claims))

    def mailgun(self, headers: Headers, raw: bytes) -> Post:
        """A Mailgun route's post, signed with the domain's webhook signing key."""
        content_type = headers.get("content-type")
        signed = self.mailgun_signed(headers, raw)
        try:
            form = read_form(raw, content_type)
        except InvalidInput as exc:
            raise Unauthenticated(f"no readable Mailgun signature: {exc.detail}") from None
        if any(form.text(name) != signed[name] for name in MAILGUN_SIGNED):
            raise Unauthenticated("the body names its signature fields more than once")
        token = signed["token"]
        envelope = mailgun_envelope(form)
        recipients = self._ours(envelope)
        digest = hashlib.sha256(raw).hexdigest()
        item = self._delivery(Channel.MAILGUN, raw, headers, envelope, recipients)
        claim = keys.Claim(keys.MAILGUN_TOKEN, token[:MAX_KEY_CHARS], digest)
        return Post(item, (claim,), replay_refused=True)

    def mailgun_signed(self, headers: Headers, raw: bytes) -> dict[str, str]:
        """Mailgun's signature fields, verified before anything else reads the body: only
        Mailgun may make us parse all of it. A few ms for 5 MB (`first_fields`), so the route
        runs this on the loop and only an authenticated post takes a worker thread."""
        key = auth.required(self.settings.mailgun_signing_key, "MAILGUN_SIGNING_KEY")
        signed = first_fields(raw, headers.get("content-type"), MAILGUN_SIGNED)
        auth.mailgun_signature(key, *(signed.get(name, "") for name in MAILGUN_SIGNED))
        return signed

    def postmark(self, headers: Headers, raw: bytes) -> Post:
        """Postmark's inbound JSON, behind basic credentials in the webhook URL."""
        user = auth.required(self.settings.postmark_inbound_user, "POSTMARK_INBOUND_USER")
        password = auth.required(
            self.settings.postmark_inbound_password, "POSTMARK_INBOUND_PASSWORD"
        )
        auth.basic_credentials(headers.get("authorization", ""), user, password)
        try:
            envelope = postmark_envelope(raw)
        except Rejected:  # stored all the same, and kept as rejected (Postmark stops retrying)
            envelope = Envelope([], None, None)
        recipients = self._ours(envelope)
        return Post(self._delivery(Channel.POSTMARK, raw, headers, envelope, recipients))

    def sendgrid(self, headers: Headers, raw: bytes) -> Post:
        """SendGrid Inbound Parse (parsed or raw), behind basic credentials in the URL."""
        user = auth.required(self.settings.sendgrid_inbound_user, "SENDGRID_INBOUND_USER")
        password = auth.required(
            self.settings.sendgrid_inbound_password, "SENDGRID_INBOUND_PASSWORD"
        )
        auth.basic_credentials(headers.get("authorization", ""), user, password)
        try:
            envelope = sendgrid_envelope(read_form(raw, headers.get("content-type")))
        except InvalidInput:
            envelope = Envelope([], None, None)
        # SendGrid retries anything but 2xx for days and has no "stop" code: a post for an
        # address that is not ours is kept, and rejected when it is processed.
        refused = bool(envelope.recipients) and not self._mailboxes(envelope)
        return Post(
            self._delivery(
                Channel.SENDGRID, raw, headers, envelope, envelope.recipients, refused=refused
            )
        )

    def _mailboxes(self, envelope: Envelope) -> list[str]:
        return [r for r in envelope.recipients if self.settings.mailbox(r)]

    def _ours(self, envelope: Envelope) -> list[str]:
        """The post's recipients that are ours; PermissionDenied when it names only others."""
        ours = self._mailboxes(envelope)
        if envelope.recipients and not ours:
            raise PermissionDenied(
                f"no recipient of this post is one of our addresses: {envelope.recipients[:5]}"
            )
        return ours

    @staticmethod
    def _delivery(
        channel: Channel,
        raw: bytes,
        headers: Headers,
        envelope: Envelope,
        recipients: list[str],
        **extra: Any,
    ) -> Submission:
        return Submission(
            channel=channel,
            raw=raw,
            recipients=recipients,
            envelope_from=envelope.sender,
            external_id=envelope.message_id,
            extra={"content_type": headers.get("content-type"), **extra},
        )
