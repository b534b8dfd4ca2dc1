"""The pipe edge: one message on standard input from the MTA in front (`doxa ingest -`).

Postfix's pipe transport (or any MTA's) runs `doxa ingest - --sender ${sender} --recipient
${recipient}` and reads the exit status as sysexits(3) says, as Request Tracker's
rt-mailgate does: 0 stored, 65 (EX_DATAERR) never acceptable, so the MTA bounces it,
75 (EX_TEMPFAIL) not stored now, so the MTA keeps it and retries. The rules are the SMTP
listener's: recipients, size, durable storage before success, then the same pipeline.
Postfix copies whatever the command prints into its log and its bounces, so a delivery
prints nothing when it succeeds and one short line when it does not (`doxa.cli`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.exc import SQLAlchemyError

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.pipeline import Pipeline, Submission, message_id_of
from doxa.core.intake.processing import DatabaseUnavailable, process_event
from doxa.core.intake.trust import PIPE

log = logging.getLogger(__name__)

EX_OK, EX_DATAERR, EX_TEMPFAIL = 0, 65, 75
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PipeResult:
    """The exit status for the MTA, and one line saying why."""

    code: int
    detail: str


def read_limited(stream: BinaryIO, limit: int) -> bytes | None:
    """The whole stream, or None when it is over `limit` bytes (read to its end regardless,
    so the MTA's write never fails on a closed pipe)."""
    data = bytearray()
    while chunk := stream.read(_CHUNK):
        if len(data) <= limit:
            data += chunk
    return None if len(data) > limit else bytes(data)


def deliver(
    context: Context, pipeline: Pipeline, stream: BinaryIO, *, sender: str, recipient: str
) -> PipeResult:
    """Store one piped message durably, then run it through the pipeline."""
    settings = context.settings
    raw = read_limited(stream, settings.max_message_bytes)
    if settings.mailbox(recipient) is None:
        return PipeResult(EX_DATAERR, f"5.1.1 <{recipient}>: no such mailbox here")
    if raw is None:
        return PipeResult(EX_DATAERR, "5.3.4 message too big for system")
    if not raw.strip():
        return PipeResult(EX_DATAERR, "5.6.0 empty message")
    item = Submission(
        Channel.EMAIL,
        raw,
        [recipient],
        envelope_from=sender,
        external_id=message_id_of(raw),
        # No peer: any local process can run us, so the MTA's Authentication-Results header is
        # believed only with TRUSTED_PIPE=true, never through TRUSTED_RELAYS naming loopback.
        extra={"via": PIPE},
    )
    try:
        with transaction(context.sessions) as db:
            accepted = pipeline.accept(db, item)
            event_id, status = accepted.id, accepted.status
    except SQLAlchemyError as exc:
        log.warning("could not store a piped message from <%s>: %s", sender, type(exc).__name__)
        return PipeResult(EX_TEMPFAIL, "4.3.0 temporary failure storing the message")
    if accepted.outcome is not None:
        accepted.outcome.log()
    if status is IntakeStatus.RECEIVED:
        try:  # stored: whatever happens now, a running server's sweep finishes the job
            outcome = process_event(context.sessions, pipeline, event_id)
            status = outcome or status
        except DatabaseUnavailable:
            log.warning("intake event %s stored, processing left to the server", event_id)
    return PipeResult(EX_OK, f"intake event {event_id}: {status.value}")
