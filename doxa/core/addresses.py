"""One spelling per mailbox: the form every address takes before it is compared or stored as
someone's identity (users, requesters, participants, the staff check, the sender rate limit).

`Agent@Staff.Example.`, `"agent"@staff.example` and the same in fullwidth letters all reach
the mailbox `agent@staff.example`; compared as written, each became a client account that
looks like the agent. The domain is folded as IDNA does (Unicode NFKC, case, `xn--` labels
read back as Unicode, the ideographic full stops as dots, no trailing dot); a domain that mixes
scripts inside one label (a Cyrillic a among Latin letters) is kept in punycode, so it never
looks like the domain it imitates. Local parts are compared without case, and unquoted when
the quotes change nothing.
"""

from __future__ import annotations

import re
import unicodedata

LOCAL_OCTETS = 64  # RFC 5321 4.5.3.1.1
DOMAIN_OCTETS = 255  # RFC 5321 4.5.3.1.2
ADDRESS_OCTETS = 254  # RFC 5321 4.5.3.1.3: a path of 256 octets with its angle brackets

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]"  # RFC 5322 atext, RFC 6532 UTF-8
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_LABEL = re.compile(r"^[^\s@\"(),:;<>\[\]\\]+$")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})  # IDNA's label separators
# Scripts a single label may combine: Japanese writes Han, kana and Latin together, Korean Han
# and Hangul (Unicode's "highly restrictive" profile). Anything else mixed is an imitation.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
)
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def normalize_address(value: str) -> str | None:
    """The canonical form of one address (`local@domain`), or None when it is no usable
    address: no `@`, an empty or invalid part, invisible characters, or longer than RFC 5321
    allows. Applying it to its own result changes nothing."""
    local, at, domain = value.strip().rpartition("@")
    if not at:
        return None
    mailbox, host = _local_part(local), normalize_domain(domain)
    if mailbox is None or host is None:
        return None
    address = f"{mailbox}@{host}"
    if len(mailbox.encode()) > LOCAL_OCTETS or len(address.encode()) > ADDRESS_OCTETS:
        return None
    return address


def normalize_domain(value: str) -> str | None:
    """A domain as `normalize_address` writes it, or None when it is not one."""
    text = unicodedata.normalize("NFKC", value.strip()).translate(_DOTS).lower()
    text = text.removesuffix(".")
    labels = [_from_punycode(label) for label in text.split(".")]
    if not all(labels) or not all(_LABEL.match(label) for label in labels):
        return None
    if any(_invisible(label) for label in labels):
        return None
    domain = ".".join(labels)
    ascii_form = ".".join(_to_punycode(label) for label in labels)
    if len(ascii_form) > DOMAIN_OCTETS:
        return None
    return ascii_form if any(_mixed_scripts(label) for label in labels) else domain


def _local_part(value: str) -> str | None:
    text = unicodedata.normalize("NFKC", value)
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = re.sub(r"\\(.)", r"\1", text[1:-1])  # RFC 5322 quoted-pair
        if not _DOT_ATOM.match(text):
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            return None if _invisible(text, spaces=False) else f'"{quoted.lower()}"'
    if not text or not _DOT_ATOM.match(text) or _invisible(text):
        return None
    return text.lower()


def _invisible(text: str, *, spaces: bool = True) -> bool:
    hidden = _INVISIBLE if spaces else _INVISIBLE - {"Zs"}
    return any(unicodedata.category(ch) in hidden for ch in text)


def _from_punycode(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label  # not valid punycode: the label as written, never equal to a real one
    return unicodedata.normalize("NFKC", decoded).lower() or label


def _to_punycode(label: str) -> str:
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


def _mixed_scripts(label: str) -> bool:
    scripts = {_script(ch) for ch in label if unicodedata.category(ch).startswith("L")}
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES)


def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name (`CYRILLIC SMALL LETTER A`)."""
    name = unicodedata.name(ch, "UNKNOWN")
    return "CJK" if name.startswith("CJK") else name.split(" ", 1)[0]


def identity_key(value: str) -> str:
    """The address as accounts store and look it up: normalized; when it is no usable address
    (a typo at login), only trimmed and lower-cased, so it still names nobody else."""
    return normalize_address(value) or value.strip().lower()


def ascii_address(address: str) -> str:
    """The address with its domain in punycode, as an SMTP server without SMTPUTF8 takes it."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    return f"{local}@{'.'.join(_to_punycode(label) for label in domain.split('.'))}"
