"""What the classifier reads: a ticket's text plus urgency cue tokens."""

from __future__ import annotations

import re


def ticket_text(subject: str, body: str) -> str:
    return f"{subject}\n{body}"


# Urgency cues in the shipped languages; the priority model sees them as extra tokens, so a
# "server down, all users blocked" ticket weighs the same whichever words carry the urgency.
_URGENT = re.compile(
    r"\b(urgent\w*|asap|immediately|emergency|critical|outage|down|blocked|blocking|"
    r"cannot|can't|unable|all users|everyone|production|dringend|sofort|ausfall|"
    r"urgente|inmediato|caído|caida|bloqueado|bloqué|panne|immédiatement)\b",
    re.IGNORECASE,
)
_RELAXED = re.compile(
    r"\b(whenever|no rush|no hurry|when you have time|suggestion|idea|would be nice|"
    r"curious|just wondering|keine eile|sin prisa|pas urgent)\b",
    re.IGNORECASE,
)


def with_cues(text: str) -> str:
    """The text with one `__urgent__` / `__relaxed__` token per cue, `__exclaim__` for "!!"."""
    cues = ["__urgent__"] * len(_URGENT.findall(text)) + ["__relaxed__"] * len(
        _RELAXED.findall(text)
    )
    if text.count("!") >= 2:
        cues.append("__exclaim__")
    return text + "\n" + " ".join(cues)
