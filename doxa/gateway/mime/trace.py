"""Where the MTA in front wrote: the Authentication-Results fields around its Received line.

The relay that hands us a message adds its `Received` line on top, and its own
`Authentication-Results` above that (or, with Postfix's milters, directly below it). Fields
further down came with the message from wherever the sender liked. The trust rules
(`doxa.core.intake.trust`) decide which of these to believe; here we only say where each is.
"""

from __future__ import annotations

from email.message import Message

from doxa.core.intake.trust import AUTHENTICATION_RESULTS
from doxa.gateway.mime.headers import undo_surrogates

MAX_RESULTS_ABOVE = 20
MAX_RESULT_CHARS = 8000  # one header with several results is often longer than a line


def relay_results(message: Message) -> tuple[list[str], str | None]:
    """The Authentication-Results values above the topmost Received line, top down, and the
    one directly below it; nothing at all when there is no Received line (no relay handled the
    message). Values are unfolded but not RFC 2047-decoded: an encoded word must not turn into
    separators the relay never wrote."""
    above: list[str] = []
    try:
        fields = iter(message.raw_items())
        for name, value in fields:
            key = name.strip().lower()
            if key == "received":
                name, value = next(fields, ("", ""))
                below = name.strip().lower() == AUTHENTICATION_RESULTS
                return above, _unfolded(value) if below else None
            if key == AUTHENTICATION_RESULTS and len(above) < MAX_RESULTS_ABOVE:
                above.append(_unfolded(value))
    except Exception:  # a header the policy cannot even list: nothing is vouched for
        return [], None
    return [], None


def _unfolded(value: object) -> str:
    return " ".join(undo_surrogates(str(value)).split())[:MAX_RESULT_CHARS]
