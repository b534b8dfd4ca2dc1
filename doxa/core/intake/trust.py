"""Who really wrote an inbound message, as far as the MTA in front can vouch for it.

Anyone can write any `From:`; only the MTA that received the message from the internet
checked SPF, DKIM and DMARC, and it says so in an `Authentication-Results` header (RFC 8601).
We believe such a header only when all hold: its authserv-id is one of
`TRUSTED_AUTHSERV_IDS`; the message reached our SMTP listener from one of `TRUSTED_RELAYS`
(or came through `doxa ingest -` with `TRUSTED_PIPE=true`); and the header sits above the
relay's topmost `Received` line, where only the relay writes (the one directly below it counts
too with `TRUSTED_AR_BELOW_RECEIVED=true`, where milters insert theirs). Anything lower came
with the message, from wherever the sender liked.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from publicsuffixlist import PublicSuffixList
from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.addresses import normalize_domain
from doxa.core.config import Settings, in_networks
from doxa.core.enums import Channel
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Ticket
from doxa.core.users import service as users
from doxa.core.users.models import User

AUTHENTICATION_RESULTS = "authentication-results"
SPOOFED = "spoofed"
DEACTIVATED = "deactivated_user"
UNVERIFIED = "unverified_sender"
PIPE = "pipe"  # the `via` of an event that `doxa ingest -` stored
MAX_RESULTS = 50  # results read from one header; a real MTA writes a handful


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a trusted MTA said about the From: domain; all False when nobody we trust spoke."""

    authenticated: bool = False  # DMARC pass, or DKIM pass signed within the From organization
    dmarc_failed: bool = False


@dataclass(frozen=True, slots=True)
class Assessment:
    hold: str | None  # a reason to hold the message, or None
    authenticated: bool
    notes: tuple[str, ...] = ()
    author: User | None = None  # the user the From: address names, looked up once per event


class Result(NamedTuple):
    """One method's result in an Authentication-Results header (RFC 8601 `resinfo`)."""

    method: str  # lower-cased, without a version: "dkim", "dmarc", "spf"
    result: str  # lower-cased: "pass", "fail", "none", ...
    props: dict[str, str]  # lower-cased "ptype.property" -> value, e.g. "header.from"
    # Its ";" had no whitespace after it (`smtp.helo=x;dmarc=pass`): it may be the tail of a
    # value the sender chose (an unquoted HELO name), so it can fail a message, never pass one.
    glued: bool = False


def assess(db: Session, event: IntakeEvent, msg: InboundMessage, settings: Settings) -> Assessment:
    """SPEC "Who wrote it": staff only when authenticated, DMARC fail held where it matters."""
    author = users.find_by_email(db, msg.sender_email) if msg.sender_email else None
    # Only our SMTP listener records a peer, and only the pipe edge says "pipe": no other
    # channel can claim to have come from the MTA in front.
    extra = (event.extra or {}) if event.channel is Channel.EMAIL else {}
    said = verdict(msg, peer=extra.get("peer"), settings=settings, piped=extra.get("via") == PIPE)
    if author is not None and not author.is_active:
        return Assessment(DEACTIVATED, said.authenticated, author=author)
    # A web form proves nothing about the address typed into it.
    proven = said.authenticated and event.channel is not Channel.FORM
    if author is not None and author.is_staff and not proven:
        return Assessment(SPOOFED, said.authenticated, author=author)
    if said.dmarc_failed:
        if author is not None and (author.is_staff or _has_tickets(db, author.id)):
            return Assessment(SPOOFED, False, author=author)
        return Assessment(None, False, (UNVERIFIED,), author=author)
    return Assessment(None, said.authenticated, author=author)


def _has_tickets(db: Session, user_id: int) -> bool:
    return db.scalar(select(Ticket.id).where(Ticket.requester_id == user_id).limit(1)) is not None


def verdict(
    msg: InboundMessage, *, peer: object, settings: Settings, piped: bool = False
) -> Verdict:
    """What the trusted Authentication-Results headers the relay wrote say of the From: domain."""
    relayed = settings.trusted_pipe if piped else _from_trusted_relay(peer, settings)
    if not relayed:
        return Verdict()
    counted = list(msg.auth_results_above)
    if settings.trusted_ar_below_received and msg.auth_result_below is not None:
        counted.append(msg.auth_result_below)
    trusted = [
        results
        for authserv_id, results in map(parse_results, counted)
        if authserv_id in settings.trusted_authserv_ids
    ]
    if not trusted:
        return Verdict()
    domain = _domain(msg.sender_email.rpartition("@")[2])
    dmarc_failed = any(_dmarc_fails(results, domain) for results in trusted)
    authenticated = not dmarc_failed and _passes(trusted[0], domain)  # the topmost one speaks
    return Verdict(authenticated, dmarc_failed)


def _dmarc_fails(results: list[Result], domain: str) -> bool:
    """A DMARC fail about this From domain (or about no domain named: the message's own)."""
    return any(
        r.method == "dmarc"
        and r.result == "fail"
        and _domain(r.props.get("header.from", domain)) == domain
        for r in results
    )


def _passes(results: list[Result], domain: str) -> bool:
    """DMARC pass naming this From domain, or DKIM pass signed by its organizational domain."""
    if not domain:
        return False
    for r in results:
        if r.glued or r.result != "pass":
            continue
        if r.method == "dmarc" and _domain(r.props.get("header.from", "")) == domain:
            return True
        if r.method == "dkim":
            signer = r.props.get("header.d") or r.props.get("header.i", "").rpartition("@")[2]
            organization = _organizational(signer)
            if organization is not None and organization == _organizational(domain):
                return True
    return False


def _domain(value: str) -> str:
    """A domain as compared (core.addresses' one spelling); empty when it is none."""
    return normalize_domain(value) or ""


@functools.cache
def _suffixes() -> PublicSuffixList:
    # The list bundled with the package: nothing is fetched at run time.
    return PublicSuffixList()


def _organizational(domain: str) -> str | None:
    """The registrable domain (`staff.example` of `mail.staff.example`); None for a public
    suffix itself (`example`, `co.uk`) or nothing at all."""
    domain = _domain(domain)
    return _suffixes().privatesuffix(domain) if domain else None


def parse_results(header: str) -> tuple[str, list[Result]]:
    """(authserv-id, results) of one RFC 8601 header value, read by its grammar: quoted strings
    and comments (nested at any depth) are never separators, `ptype.property=value` pairs
    belong to the result before them, and whatever does not fit the grammar counts for nothing.
    Ours, not the `authres` package: that one reads quotes and comments right too, but cannot
    tell a result glued to a sender's value, and has had no release since 2019."""
    segments = _segments(_tokens(header))
    head = segments[0][1]
    authserv_id = head[0].text.lower() if head and head[0].kind == _VALUE else ""
    results = []
    for glued, tokens in segments[1:]:
        result = _result(tokens, glued)
        if result is not None:
            results.append(result)
    return authserv_id, results


class _Token(NamedTuple):
    kind: str  # _VALUE (a word or quoted string), ";" or "="
    text: str
    spaced: bool = False  # whitespace or a comment came right before it
    glued: bool = False  # a ";" with no whitespace right after it


_VALUE = "value"
# One lexeme at a time: whitespace, a comment's start, a quoted string (closed or running to
# the end), a separator, a word, or a stray ")". Regular expressions keep it linear and fast.
_LEXEME = re.compile(r'(\s+)|(\()|("(?:[^"\\]|\\.)*"?)|([;=])|([^\s();="]+)|(\))', re.S)
_IN_COMMENT = re.compile(r"\\.|[()]", re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def _tokens(text: str) -> list[_Token]:
    """RFC 5322 lexical tokens; comments (nested, with quoted-pairs) are dropped as spacing."""
    tokens: list[_Token] = []
    i, n, spaced = 0, len(text), False
    while i < n:
        match = _LEXEME.match(text, i)
        if match is None:  # cannot happen: every character starts some lexeme
            break
        space, comment, quoted, separator, word, stray = match.groups()
        end = match.end()
        if comment is not None:
            end = _comment_end(text, i)
        elif quoted is not None:
            body = quoted[1:-1] if len(quoted) > 1 and quoted.endswith('"') else quoted[1:]
            tokens.append(_Token(_VALUE, _QUOTED_PAIR.sub(r"\1", body), spaced))
        elif separator is not None:
            glued = separator == ";" and end < n and not text[end].isspace()
            tokens.append(_Token(separator, separator, spaced, glued))
        elif word is not None:
            tokens.append(_Token(_VALUE, word, spaced))
        spaced = space is not None or comment is not None or stray is not None
        i = end
    return _joined(tokens)


def _comment_end(text: str, start: int) -> int:
    """Where the comment opening at `start` closes (nested ones included), or the end."""
    depth = 0
    for part in _IN_COMMENT.finditer(text, start):
        if part.group() == "(":
            depth += 1
        elif part.group() == ")":
            depth -= 1
            if depth == 0:
                return part.end()
    return len(text)


def _joined(tokens: list[_Token]) -> list[_Token]:
    """Adjacent values with nothing between them are one (`"a;b"@evil.test`)."""
    out: list[_Token] = []
    for token in tokens:
        if out and token.kind == out[-1].kind == _VALUE and not token.spaced:
            out[-1] = out[-1]._replace(text=out[-1].text + token.text)
        else:
            out.append(token)
    return out


def _segments(tokens: list[_Token]) -> list[tuple[bool, list[_Token]]]:
    """The tokens between `;` separators, each with whether its `;` was glued."""
    segments: list[tuple[bool, list[_Token]]] = [(False, [])]
    for token in tokens:
        if token.kind == ";":
            if len(segments) > MAX_RESULTS:
                break
            segments.append((token.glued, []))
        else:
            segments[-1][1].append(token)
    return segments


def _result(tokens: list[_Token], glued: bool) -> Result | None:
    """`method[/version]=result [reason=value] *(ptype.property=value)`; None if not that."""
    pairs: list[tuple[str, str]] = []
    for at in range(0, len(tokens) - 2, 3):
        key, equals, value = tokens[at : at + 3]
        if key.kind != _VALUE or equals.kind != "=" or value.kind != _VALUE:
            break  # off the grammar: what follows is no property we can place
        pairs.append((key.text.lower(), value.text.lower()))
    if not pairs:
        return None
    (method, result), props = pairs[0], dict(pairs[:0:-1])  # the first of a repeated key wins
    return Result(method.split("/")[0].strip(), result, props, glued)


def _from_trusted_relay(peer: object, settings: Settings) -> bool:
    return isinstance(peer, str) and in_networks(peer, settings.trusted_relays)
