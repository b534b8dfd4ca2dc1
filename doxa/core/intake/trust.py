"""Who really wrote an inbound message, as far as the MTA in front can vouch for it.

Anyone can write any `From:`; only the MTA that received the message from the internet
checked SPF, DKIM and DMARC, and it says so in the `Authentication-Results` header it puts on
top (RFC 8601). We believe that header only when both hold: its authserv-id is one of
`TRUSTED_AUTHSERV_IDS`, and the message reached our SMTP listener from one of
`TRUSTED_RELAYS`, so a sender connecting directly cannot write the header itself. Only the
topmost header counts: anything below it came from further away, where anyone writes it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from doxa.core.config import Settings
from doxa.core.enums import Channel
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.models import IntakeEvent
from doxa.core.tickets.models import Ticket
from doxa.core.users import service as users
from doxa.core.users.models import User

AUTHENTICATION_RESULTS = "authentication-results"
HEADERS_READ = frozenset({AUTHENTICATION_RESULTS})
SPOOFED = "spoofed"
DEACTIVATED = "deactivated_user"
UNVERIFIED = "unverified_sender"

_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"([A-Za-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a trusted MTA said about the From: domain; all False when nobody we trust spoke."""

    authenticated: bool = False  # DMARC pass, or DKIM pass with a signature of the From domain
    dmarc_failed: bool = False


@dataclass(frozen=True, slots=True)
class Assessment:
    hold: str | None  # a reason to hold the message, or None
    authenticated: bool
    notes: tuple[str, ...] = ()
    author: User | None = None  # the user the From: address names, looked up once per event


def assess(db: Session, event: IntakeEvent, msg: InboundMessage, settings: Settings) -> Assessment:
    """SPEC "Who wrote it": staff only when authenticated, DMARC fail held where it matters."""
    author = users.find_by_email(db, msg.sender_email) if msg.sender_email else None
    # Only our SMTP listener records a peer; no other channel can claim to be a trusted relay.
    peer = (event.extra or {}).get("peer") if event.channel is Channel.EMAIL else None
    said = verdict(msg, peer=peer, settings=settings)
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


def verdict(msg: InboundMessage, *, peer: object, settings: Settings) -> Verdict:
    """The topmost Authentication-Results header's word on the From: domain, if we trust it."""
    header = msg.headers.get(AUTHENTICATION_RESULTS)
    if not header or not _from_trusted_relay(peer, settings):
        return Verdict()
    authserv_id, results = parse_results(header)
    if authserv_id not in settings.trusted_authserv_ids:
        return Verdict()
    domain = msg.sender_email.rpartition("@")[2]
    authenticated = dmarc_failed = False
    for method, result, props in results:
        if method == "dmarc" and _aligned(props.get("header.from"), domain, exact=True):
            authenticated |= result == "pass"
            dmarc_failed |= result == "fail"
        elif method == "dkim" and result == "pass":
            signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            authenticated |= bool(signer) and _aligned(signer, domain, exact=False)
    return Verdict(authenticated and not dmarc_failed, dmarc_failed)


def parse_results(header: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """(authserv-id, [(method, result, {ptype.property: value})]) of one RFC 8601 header."""
    text = header
    for _ in range(5):  # comments may nest; a few passes take out any a real MTA writes
        text = _COMMENT.sub(" ", text)
    first, *rest = text.split(";")
    authserv_id = (first.split() or [""])[0].lower()
    results = []
    for clause in rest[:50]:
        pairs = [(k.lower(), v.strip('"').lower()) for k, v in _PROPERTY.findall(clause)]
        if pairs:
            (method, result), props = pairs[0], dict(pairs[1:])
            results.append((method.split("/")[0], result, props))
    return authserv_id, results


def _aligned(value: str | None, domain: str, *, exact: bool) -> bool:
    """DMARC names the From domain itself (absent: it spoke of this message's From); a DKIM
    signature aligns when it is the From domain or a parent of it (relaxed alignment)."""
    if value is None:
        return exact
    value = value.lower().rstrip(".")
    return bool(domain) and (value == domain or (not exact and domain.endswith("." + value)))


def _from_trusted_relay(peer: object, settings: Settings) -> bool:
    if not isinstance(peer, str) or not settings.trusted_relays:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.trusted_relays)
