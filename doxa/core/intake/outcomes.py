"""What became of an inbound event, logged as one line wherever it was decided.

Every outcome goes through `Outcome.log`: those of processing (a ticket, a follow-up, held,
rejected, failed, a duplicate found by its Message-ID) and a repeated delivery recorded as a
duplicate when it is accepted. The fields (event id, channel, sender, outcome, ticket, reason)
are in the text, and separate under those names with LOG_FORMAT=json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from doxa.core.enums import Channel, IntakeStatus
from doxa.core.intake.models import IntakeEvent

log = logging.getLogger(__name__)
ERROR_CHARS = 200  # of a failure's error, as its reason: the event keeps the whole text


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event, read before its session closes, logged after the commit."""

    event_id: int
    channel: Channel
    sender: str | None
    status: IntakeStatus
    ticket_id: int | None
    reason: str | None
    duplicate_of: int | None = None

    @classmethod
    def of(cls, event: IntakeEvent) -> Outcome:
        # The header's sender once processed, else the envelope's; a failure's error as reason.
        return cls(
            event.id,
            event.channel,
            event.sender or event.envelope_from,
            event.status,
            event.ticket_id,
            event.reason or _first_line(event.error),
            event.duplicate_of_id,
        )

    def log(self, level: int = logging.INFO, *, error: BaseException | None = None) -> None:
        """One line: what an operator follows in the log. `error` adds its traceback."""
        fields: dict[str, object] = {
            "event_id": self.event_id,
            "channel": self.channel.value,
            "sender": self.sender,
            "outcome": self.status.value,
            "ticket": self.ticket_id,
            "reason": self.reason,
        }
        text = "intake event %s %s from %s: %s ticket=%s reason=%s"
        args: tuple[object, ...] = tuple(fields.values())
        if self.duplicate_of is not None:
            fields["duplicate_of"] = self.duplicate_of
            text, args = text + " duplicate_of=%s", (*args, self.duplicate_of)
        log.log(level, text, *args, extra={"fields": fields}, exc_info=error)


def _first_line(error: str | None) -> str | None:
    return error.splitlines()[0][:ERROR_CHARS] if error else None
