"""Message-text helpers: HTML to text, HTML sanitizing, reply stripping, subject normalizing.

Pure functions without I/O. Every one of them takes hostile input (mail from anyone) and
never raises: a helper that fails degrades to a plainer result instead.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from dataclasses import dataclass

import html2text
import nh3
from mailparser_reply import EmailReplyParser

# html2text is pure Python and roughly linear, but a multi-megabyte HTML body still costs
# seconds; nobody reads more than this in a ticket anyway.
MAX_HTML_READ_CHARS = 2 * 1024 * 1024  # of the HTML as written: `flatten_deep` reads this far
MAX_HTML_CHARS = 512 * 1024  # of the flattened HTML, for HTML to text
MAX_SANITIZE_CHARS = 1024 * 1024  # of the flattened HTML, for the HTML kept
# What each costs per tag, not per byte: html2text about 10-20 us a tag ("<li>x" * 200,000 took
# 8.6 s), html5ever under nh3 about 2 us. A long newsletter has a few thousand tags; past these
# the HTML is converted or kept up to that tag, with a note.
MAX_CONVERTED_TAGS = 5_000
MAX_SANITIZED_TAGS = 30_000
# The reply parser runs its multi-line regexes once per language over the whole text (about
# 0.1 s per 32 KiB with five languages on the long-quote perf case, 0.5 s at 64 KiB with ten);
# the new text of a reply starts well before this point.
MAX_REPLY_SCAN_CHARS = 32 * 1024
REPLY_LANGUAGES = ["en", "de", "fr", "es", "nl"]

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "dir", "lang"},
    "a": {"href", "hreflang", "title"},
    "img": {"align", "alt", "height", "src", "width", "title"},
    "font": {"color", "face", "size"},
    "td": {"align", "valign", "colspan", "rowspan", "width", "bgcolor"},
    "th": {"align", "valign", "colspan", "rowspan", "width", "bgcolor", "scope"},
    "table": {"align", "border", "cellpadding", "cellspacing", "width", "bgcolor"},
}
_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "text-align",
    "text-decoration",
    "vertical-align",
    "white-space",
    "width",
    "height",
    "margin",
    "margin-left",
    "margin-right",
    "margin-top",
    "margin-bottom",
    "padding",
    "padding-left",
    "padding-right",
    "padding-top",
    "padding-bottom",
    "border",
    "border-collapse",
    "line-height",
    "list-style-type",
}
# Declarations that hide text from the agent while a filter or the classifier still reads it:
# zero-size or transparent text, invisible boxes. Not "display", which is left out above.
_HIDING = re.compile(
    r"^(?:font-size\s*:\s*0*\.?0*(?:px|pt|em|rem|%)?|(?:color|background-color)\s*:\s*"
    r"(?:transparent|rgba\([^)]*,\s*0*\.?0+\s*\)))\s*$",
    re.IGNORECASE,
)
# An <img> in nh3's output: attributes are always double-quoted there.
_IMG = re.compile(r"<img((?:\s+[a-z-]+=\"[^\"]*\")*)\s*/?>")
_ATTRIBUTE = re.compile(r"([a-z-]+)=\"([^\"]*)\"")
_URL_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}

_TAG = re.compile(r"<[^<>]*>")
# html5ever (under nh3) costs the square of the nesting depth: 8,000 nested <div> took 0.12 s,
# so the 5 MB allowed here would take hours. Real mail nests a few dozen deep.
MAX_HTML_DEPTH = 200
# A tag ends at ">", and an unterminated one at the next "<": each scan stops where the next
# may start, so the pass stays linear on "<a<a<a…".
_ELEMENT_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*>")
# nh3 takes time that grows faster than the input with each "&" that stands for itself
# ("&#" * 400,000 took 17 s, "&amp;" * 800,000 13 s): a bare "&", one that starts no complete
# reference, and "&amp;" itself pass through it as a private-use placeholder.
_AMP = "\ue000"
# The entities nh3's serializer writes; html2text spends microseconds on each one ("&#" * 400,000
# became "&amp;#" and took 17 s there), so they reach it as private-use characters (input's own
# are replaced first) and come back as the characters they stand for.
# Plain str.replace, not a regex with a function: a million Python calls cost seconds too.
_ESCAPED = (
    ("&amp;", _AMP),
    ("&lt;", "\ue001"),
    ("&gt;", "\ue002"),
    ("&quot;", "\ue003"),
    ("&nbsp;", "\ue004"),
)
_AMP_REFERENCE = re.compile(r"&(?:amp|#0*38|#[xX]0*26);")
_INCOMPLETE_REFERENCE = re.compile(
    r"&(?![a-zA-Z][a-zA-Z0-9]{0,31};|#[0-9]{1,8};|#[xX][0-9a-fA-F]{1,8};)"
)
# Elements with no end tag, or whose end tag is optional (the parser closes them by itself).
_NOT_NESTING = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
    "p",
    "li",
    "dt",
    "dd",
    "tr",
    "td",
    "th",
    "option",
    "optgroup",
    "rb",
    "rt",
    "rp",
    "thead",
    "tbody",
    "tfoot",
    "colgroup",
    "caption",
    "html",
    "head",
    "body",
}
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_RULE = re.compile(r"(?:\n\s*[-_=*]{5,}\s*)+\Z")
# "02.04.2012 14:20 <someone> написал:" in a language the reply parser does not know.
_TRAILING_ATTRIBUTION = re.compile(
    r"\n[^\n]*\d{1,4}[./-]\d{1,2}[./-]\d{2,4}[^\n]*(?:\n[^\n]*)?:\s*\Z"
)


@functools.lru_cache(maxsize=2)  # HTML to text and sanitizing flatten the same body
def flatten_deep(html: str) -> str:
    """HTML without the element tags nested deeper than `MAX_HTML_DEPTH` (text is kept).

    One pass over the tags, so the sanitizer and the converter after it never meet a depth
    that costs them quadratic time.
    """
    depth = 0
    pieces: list[str] = []
    position = 0
    for tag in _ELEMENT_TAG.finditer(html):
        if tag.group(2).lower() in _NOT_NESTING:
            continue
        closing = bool(tag.group(1))
        deep = (depth if closing else depth + 1) > MAX_HTML_DEPTH
        depth = max(0, depth - 1) if closing else depth + 1
        if deep:
            pieces.append(html[position : tag.start()])
            position = tag.end()
    if not pieces:
        return html
    pieces.append(html[position:])
    return "".join(pieces)


def html_to_text(html: str, notes: list[str] | None = None) -> str:
    """Readable plain text of an HTML body: no wrapping, no images, links as `[text](url)`.

    html2text reads with the standard library's HTMLParser, which is quadratic on malformed
    markup (10,000 unclosed "<div " took 28 s); it is given html5ever's well-formed rewrite,
    without entities, and only the first `MAX_CONVERTED_TAGS` tags (noted in `notes`).
    """
    bound = _Bound(MAX_HTML_CHARS, MAX_CONVERTED_TAGS, "converted to text", notes)
    html = bound.first_chars(html)
    try:
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_images = True
        converter.unicode_snob = True
        converter.single_line_break = False
        for _, private in _ESCAPED:
            html = html.replace(private, "\ufffd")
        clean = _clean(html, link_rel=None, bound=bound, keep_amp=True)
        for entity, private in _ESCAPED:
            clean = clean.replace(entity, private)
        text = converter.handle(clean)
        for entity, private in _ESCAPED:
            text = text.replace(private, html_lib.unescape(entity))
    except Exception:  # hostile HTML must degrade, not fail
        text = html_lib.unescape(_TAG.sub(" ", html))
    return _BLANK_LINES.sub("\n\n", text).strip()


def sanitize_html(html: str, notes: list[str] | None = None) -> str:
    """HTML safe to show an agent: allowlisted tags and styles, no hidden text, and `cid:`
    images kept while remote images become a link (loading one tells the sender the mail was
    read, and from where). Only the first `MAX_SANITIZED_TAGS` tags are kept (noted)."""
    try:
        bound = _Bound(MAX_SANITIZE_CHARS, MAX_SANITIZED_TAGS, "kept", notes)
        rel = "noopener noreferrer nofollow"
        clean = _clean(bound.first_chars(html), link_rel=rel, bound=bound)
        return _IMG.sub(_remote_image_placeholder, clean)
    except Exception:  # fall back to escaped text rather than raw HTML
        return html_lib.escape(html_to_text(html))


@dataclass(frozen=True, slots=True)
class _Bound:
    """`MAX_HTML_READ_CHARS` of the HTML are flattened, and at most `chars` characters and
    `tags` tags of that (each "<" counts) reach the parser; a cut is noted in `notes` as the
    HTML `done` up to that point."""

    chars: int
    tags: int
    done: str
    notes: list[str] | None

    def first_chars(self, html: str, limit: int = MAX_HTML_READ_CHARS) -> str:
        if len(html) <= limit:
            return html
        if self.notes is not None:
            self.notes.append(f"HTML body {self.done} up to character {limit} of {len(html)}")
        return html[:limit]

    def prefix(self, html: str) -> str:
        html = self.first_chars(html, self.chars)
        position = -1
        for _ in range(self.tags):
            position = html.find("<", position + 1)
            if position < 0:
                return html
        cut = html.find("<", position + 1)
        if cut < 0:
            return html
        if self.notes is not None:
            self.notes.append(
                f"HTML body {self.done} up to its tag number {self.tags} "
                f"(character {cut} of {len(html)})"
            )
        return html[:cut]


def _visible_only(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "style":
        return value
    kept = [rule for rule in value.split(";") if rule.strip() and not _HIDING.match(rule.strip())]
    return ";".join(kept) or None


def _remote_image_placeholder(match: re.Match[str]) -> str:
    attributes = dict(_ATTRIBUTE.findall(match.group(1)))
    source = attributes.get("src", "")
    if not source or source.lower().startswith("cid:"):
        return match.group(0)
    # Values come from nh3's output, so they are escaped already.
    label = attributes.get("alt") or "image"
    return (
        f'<a href="{source}" class="doxa-remote-image" rel="noopener noreferrer nofollow">'
        f"[remote image not loaded: {label}]</a>"
    )


def _clean(html: str, *, link_rel: str | None, bound: _Bound, keep_amp: bool = False) -> str:
    """nh3's rewrite; `keep_amp`: each "&" that stands for itself stays the placeholder."""
    # Every "&" that stands for itself passes nh3 as a placeholder, and is put back escaped.
    html = _AMP_REFERENCE.sub(_AMP, bound.prefix(flatten_deep(html)).replace(_AMP, "\ufffd"))
    clean = nh3.clean(
        _INCOMPLETE_REFERENCE.sub(_AMP, html),
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head"},
        attributes=_ATTRIBUTES,
        attribute_filter=_visible_only,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel=link_rel,
    )
    return clean if keep_amp else clean.replace(_AMP, "&amp;")


def strip_reply(text: str) -> str:
    """The new text of a reply, without quoted history and signature; all of it if none is left."""
    head = text[:MAX_REPLY_SCAN_CHARS]
    try:
        replies = EmailReplyParser(languages=REPLY_LANGUAGES).read(head).replies
    except Exception:  # a parser bug must not lose the message
        return text.strip()
    if not replies or (len(replies) == 1 and len(head) < len(text)):
        return text.strip()  # no quote found where a reply would start: keep it all
    parts = [_unquoted(replies[0].body, after_quote=False)]
    if len(replies) > 1:
        # Bottom-posting: the answer follows the quoted block of the next fragment.
        parts.append(_unquoted(replies[1].body, after_quote=True))
    body = "\n\n".join(part for part in parts if part)
    body = _TRAILING_ATTRIBUTION.sub("", _TRAILING_RULE.sub("", body)).strip()
    return body or text.strip()


def _unquoted(fragment: str, *, after_quote: bool) -> str:
    lines = fragment.splitlines()
    first_quote = next((i for i, line in enumerate(lines) if line.startswith(">")), None)
    if after_quote:
        if first_quote is None:
            return ""
        lines = lines[first_quote:]
    return "\n".join(line for line in lines if not line.startswith(">")).strip()
