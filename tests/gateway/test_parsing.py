from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from doxa.core.errors import InvalidInput
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.mail_loops import loop_reason
from tests.gateway.conftest import ParsedCorpus, mail

Parse = Callable[..., InboundMessage]

# Raw files in the INDEX that are not RFC 5322 messages at all: reply-parser bodies without a
# header, a mailing-list digest body, lorem ipsum, and an Outlook .msg (OLE2 binary).
NOT_MAIL_FOLDERS = ("github-email_reply_parser/emails/", "zapier-email-reply-parser/emails/")
NOT_MAIL_FILES = {
    "cpython-test_email/data/msg_19.txt",
    "rt/emails/lorem-ipsum",
    "spamscope-mail-parser/mails/mail_outlook_1",
}

# (corpus file, field) -> why our value differs from the upstream expected value.
EXPECTED_DIFFERENCES: dict[tuple[str, str], str] = {
    (
        "zammad/mail/mail044.box",
        "from",
    ): "'yahoo.com.' with the root's dot: we normalize it away (SPEC), Zammad keeps it",
    (
        "imap_tools/messages/attachment_emails/attachment_message_rfc822.eml",
        "attachments",
    ): "broken.pdf is inside the attached message/rfc822; we store that mail as one .eml",
    (
        "imap_tools/messages/error_emails/invalid_subject_characters.eml",
        "subject",
    ): "raw Latin-1 subject: imap_tools drops the 8-bit bytes, we decode them (Formação, Verão)",
    (
        "imap_tools/messages/plain_emails/mix_caps_content_type.eml",
        "from",
    ): "'From: Big Bug bb@bug.com' lacks <>; imap_tools keeps it all, we take the address",
    (
        "imap_tools/messages/plain_emails/raw_email_incorrect_header.eml",
        "subject",
    ): "header block broken by an unindented line; we repair it and recover the subject",
    (
        "imap_tools/messages/plain_emails/raw_email_incorrect_header.eml",
        "from",
    ): "header block broken by an unindented line; we repair it and recover the sender",
    (
        "imap_tools/messages/rfc2822/example13.eml",
        "subject",
    ): "obsolete 'Subject  :' syntax (RFC 5322 4.5); we accept it, the stdlib drops the header",
    (
        "imap_tools/messages/rfc2822/example13.eml",
        "from",
    ): "obsolete 'From  :' syntax (RFC 5322 4.5); we accept it, the stdlib drops the header",
    (
        "imap_tools/messages/rfc2822/example14.eml",
        "subject",
    ): "'TEST' and an encoded-word are separated by a space, which RFC 2047 keeps; stdlib drops it",
    (
        "imap_tools/messages/text_with_content_id.eml",
        "attachments",
    ): "a text/plain part with a Content-ID but no filename is body text here, not a file",
    ("zammad/mail/mail008.box", "attachments"): (
        "unnamed inline image: Zammad invents 'image.gif', we generate 'attachment-1.gif'"
    ),
    ("zammad/mail/mail016.box", "from"): (
        "no From header: Zammad promotes Reply-To; our sender_email is that address"
    ),
    ("zammad/mail/mail019.box", "from"): (
        "no From header: Zammad promotes Reply-To; our sender_email is that address"
    ),
    ("zammad/mail/mail042.box", "attachments"): (
        "unnamed PGP/MIME version part: Zammad says 'file', we use its Content-Description"
    ),
    ("zammad/mail/mail053.box", "attachments"): (
        "unnamed text/rfc822-headers part: Zammad says 'file', we use its Content-Description"
    ),
    ("zammad/mail/mail080.box", "attachments"): (
        "unnamed inline image: Zammad invents 'image.jpg', we generate 'attachment-1.jpg'"
    ),
    (
        "zammad/mail/mail015.box",
        "attachments",
    ): "filename in raw 8-bit GB2312 with no declared charset; Zammad guesses it by detection",
    (
        "zammad/mail/mail018.box",
        "subject",
    ): "malformed UTF-7 encoded-word: Zammad leaves '+ANw-', we decode it to 'Übermittlungsstatus'",
    (
        "zammad/mail/mail035.box",
        "from",
    ): "Zammad keeps the quotes of a quoted local part; the address itself is the same",
    (
        "zammad/mail/mail046.box",
        "subject",
    ): "raw 8-bit GBK subject with no charset anywhere; Zammad guesses it by detection",
    (
        "zammad/mail/mail046.box",
        "attachments",
    ): "the attached mail's name comes from that same undeclared GBK subject",
    (
        "zammad/mail/mail062.box",
        "attachments",
    ): "Zammad names Content-Location parts (document.html, video.mov); we give them generic names",
    (
        "zammad/mail/mail064.box",
        "attachments",
    ): "Zammad mis-decodes the NFD accents of the RFC 2231 filename ('eìcran'); ours reads 'écran'",
    (
        "zammad/mail/mail071.box",
        "from",
    ): "unquoted spaces in the local part; Zammad keeps them all, we take the addr-spec found",
    (
        "zammad/mail/mail076.box",
        "from",
    ): "'\"Millions Lottery Spain transfer\"@example.com>' is no valid address; we note it",
    (
        "zammad/mail/mail085.box",
        "attachments",
    ): "Zammad turns a named inline text/html part into document.html; we keep it as the HTML body",
    (
        "zammad/mail/mail087.box",
        "from",
    ): "'Test test@example.com' without <>; Zammad keeps the whole string, we take the address",
    (
        "zammad/mail/mail087.box",
        "attachments",
    ): "Zammad stores an empty trailing part as 'file'; we drop parts with no content type or body",
    (
        "zammad/mail/mail093.box",
        "subject",
    ): "raw Shift_JIS subject while the body declares ISO-2022-JP; Zammad guesses by detection",
    (
        "zammad/mail/mail100.box",
        "attachments",
    ): "Zammad names an unnamed image 'image.jpg'; we use its Content-ID local part",
    (
        "zammad/mail/mail102.box",
        "attachments",
    ): "Zammad renames the second of two same-named files ('091.00.38'); we keep the names",
}

# sisimai bounce files that carry no machine-readable sign at all: KDDI's Japanese-only notice.
UNDETECTED_BOUNCES = {
    **{
        f"sisimai-bounces/maildir/{flavour}/lhost-kddi-01.eml": "only a Japanese subject marks it"
        for flavour in ("bsd", "dos", "mac")
    },
    # A person forwarding a bounce ("Fwd: Returned mail") is asking us something: a ticket.
    "sisimai-bounces/maildir/bsd/lhost-sendmail-14.eml": "forwarded by a person, plain text",
    # Only the subject marks these, and a subject alone holds nothing (a customer may write it).
    **{
        f"sisimai-bounces/maildir/bsd/arf-{n}.eml": "Hotmail complaint: subject, normal sender"
        for n in (22, 23, 24)
    },
    "sisimai-bounces/maildir/bsd/rfc3834-03.eml": "'Auto reply:' subject from a person's address",
}


def _norm(value: str | None) -> str:
    return " ".join((value or "").split())


def _compare(
    corpus: ParsedCorpus, path: str, subject: str, sender: str, names: list[str]
) -> list[str]:
    message = corpus.messages[path]
    found: list[str] = []
    if _norm(message.subject) != (_norm(subject) or "(no subject)"):
        found.append("subject")
    if message.sender_email != sender.lower():
        found.append("from")
    ours = Counter(a.filename for a in message.attachments)
    named = Counter(name for name in names if name)
    if named - ours or len(message.attachments) < len(names):
        found.append("attachments")
    return found


def _unexpected(
    corpus: ParsedCorpus, cases: list[tuple[str, str, str, list[str]]]
) -> dict[str, Any]:
    differences = {(case[0], field) for case in cases for field in _compare(corpus, *case)}
    listed = {key for key in EXPECTED_DIFFERENCES if key[0] in {case[0] for case in cases}}
    return {"unlisted": sorted(differences - listed), "now_matching": sorted(listed - differences)}


class TestParseEmailBasics:
    def test_plain_message_fills_the_fields(self, parse: Parse) -> None:
        msg = parse(
            mail(
                "Subject: Printer",
                "Message-ID: <a1@x.test>",
                "Date: Mon, 1 Jan 2024 10:00:00 +0000",
            )
        )
        assert (msg.sender_email, msg.sender_name, msg.reply_to) == (
            "alice@example.com",
            "Alice",
            None,
        )
        assert (msg.subject, msg.text, msg.html, msg.message_id) == (
            "Printer",
            "Hello",
            None,
            "a1@x.test",
        )
        assert msg.date == "Mon, 1 Jan 2024 10:00:00 +0000"
        assert msg.content_type == "text/plain"

    def test_empty_input_is_invalid(self, parse: Parse) -> None:
        with pytest.raises(InvalidInput):
            parse(b"  \r\n")

    def test_headerless_text_is_invalid(self, parse: Parse) -> None:
        with pytest.raises(InvalidInput):
            parse(b"Just some words\nand more words\n")

    def test_reply_to_never_becomes_the_author(self, parse: Parse) -> None:
        msg = parse(mail("Reply-To: Bob <BOB@Example.COM>", "Subject: x"))
        assert (msg.sender_email, msg.sender_name, msg.reply_to) == (
            "alice@example.com",
            "Alice",
            "bob@example.com",
        )

    def test_invalid_reply_to_is_ignored(self, parse: Parse) -> None:
        msg = parse(mail("Reply-To: not an address"))
        assert (msg.sender_email, msg.reply_to) == ("alice@example.com", None)

    def test_cc_addresses_are_read_in_order_without_repeats(self, parse: Parse) -> None:
        msg = parse(mail("Cc: Bob <BOB@x.test>, carol@y.test, bob@x.test", "Subject: x"))
        assert msg.cc == ["bob@x.test", "carol@y.test"]

    def test_authentication_results_are_placed_around_the_topmost_received_line(
        self, parse: Parse
    ) -> None:
        top = "mx.ours.test; dkim=pass header.d=example.com; spf=pass " + "x" * 1500
        raw = (
            f"Authentication-Results: {top}\r\nAuthentication-Results: mx.ours.test;\r\n"
            " dmarc=pass\r\nReceived: from a by mx.ours.test; Fri, 27 Nov 2026 10:00:01 +0000\r\n"
            "Authentication-Results: milter; =?us-ascii?q?x=3B?=\r\n"
            "Received: from b by c\r\nAuthentication-Results: sender; x\r\n"
        )
        msg = parse(raw + mail())
        assert msg.auth_results_above == [top, "mx.ours.test; dmarc=pass"]
        assert msg.auth_result_below == "milter; =?us-ascii?q?x=3B?="  # never RFC 2047-decoded

    def test_without_a_received_line_no_authentication_results_are_placed(
        self, parse: Parse
    ) -> None:
        msg = parse(mail("Authentication-Results: mx.ours.test; dmarc=pass"))
        assert (msg.auth_results_above, msg.auth_result_below) == ([], None)

    def test_missing_from_is_noted(self, parse: Parse) -> None:
        msg = parse(b"Subject: hi\r\n\r\nbody\r\n")
        assert msg.sender_email == "" and "no valid From address" in msg.notes

    def test_empty_subject_becomes_placeholder(self, parse: Parse) -> None:
        assert parse(mail("Subject:   ")).subject == "(no subject)"

    def test_long_folded_subject_is_one_capped_line(self, parse: Parse) -> None:
        subject = parse(mail("Subject: " + "word\r\n " * 400)).subject
        assert "\n" not in subject and len(subject) == 998

    def test_thread_ids_lose_brackets_and_junk(self, parse: Parse) -> None:
        msg = parse(
            mail("In-Reply-To: <a@x>  (comment)", "References: <r1@x>\r\n\t<r2@x> junk <r1@x>")
        )
        assert (msg.in_reply_to, msg.references) == (["a@x"], ["r1@x", "r2@x"])

    def test_bare_message_id_is_kept(self, parse: Parse) -> None:
        assert parse(mail("Message-ID:  bare-id@x.test ")).message_id == "bare-id@x.test"

    def test_loop_headers_are_copied_lower_cased(self, parse: Parse) -> None:
        msg = parse(mail("Auto-Submitted: auto-replied", "List-Id: <l.x>", "X-Other: 1"))
        assert msg.headers["auto-submitted"] == "auto-replied"
        assert msg.headers["list-id"] == "<l.x>"
        assert "x-other" not in msg.headers


class TestParseEmailCharsets:
    def test_rfc2047_subject_and_name_are_decoded(self, parse: Parse) -> None:
        msg = parse(
            "From: =?iso-8859-1?q?J=FCrgen?= <j@x.test>\r\n"
            "Subject: =?utf-8?b?w6TDtsO8?= =?utf-8?q?_ok?=\r\n\r\nx"
        )
        assert (msg.sender_name, msg.subject) == ("Jürgen", "äöü ok")

    def test_utf8_split_across_encoded_words_is_joined(self, parse: Parse) -> None:
        assert parse(mail("Subject: =?utf-8?q?=C3?= =?utf-8?q?=A4?=")).subject == "ä"

    def test_latin1_body_is_decoded(self, parse: Parse) -> None:
        raw = (
            mail(content_type="text/plain; charset=iso-8859-1")
            .encode()
            .replace(b"Hello", b"Gr\xfc\xdfe")
        )
        assert parse(raw).text == "Grüße"

    def test_wrongly_declared_charset_falls_back(self, parse: Parse) -> None:
        raw = mail(content_type="text/plain; charset=us-ascii", body="Grüße")
        assert parse(raw).text == "Grüße"

    def test_unknown_charset_does_not_raise(self, parse: Parse) -> None:
        assert (
            parse(mail(content_type="text/plain; charset=x-klingon", body="plain")).text == "plain"
        )

    def test_raw_utf8_header_is_decoded(self, parse: Parse) -> None:
        assert parse(mail("Subject: Säying Hello")).subject == "Säying Hello"


def _multipart(*parts: str, subtype: str = "mixed") -> str:
    body = "".join(f"--B\r\n{part}\r\n" for part in parts) + "--B--\r\n"
    return mail("MIME-Version: 1.0", f'Content-Type: multipart/{subtype}; boundary="B"', body=body)


class TestParseEmailBodies:
    def test_html_only_mail_becomes_text_and_sanitized_html(self, parse: Parse) -> None:
        msg = parse(mail(content_type="text/html", body="<p>Hi <script>x()</script><b>you</b></p>"))
        assert msg.text == "Hi **you**"
        assert msg.html == "<p>Hi <b>you</b></p>"

    def test_alternative_prefers_the_plain_part(self, parse: Parse) -> None:
        plain, html = (
            "Content-Type: text/plain\r\n\r\nplain",
            "Content-Type: text/html\r\n\r\n<p>h</p>",
        )
        msg = parse(_multipart(plain, html, subtype="alternative"))
        assert (msg.text, msg.html) == ("plain", "<p>h</p>")

    def test_oversized_text_is_truncated_with_a_note(self, parse: Parse) -> None:
        msg = parse(mail(body="a" * (1024 * 1024 + 10)))
        assert len(msg.text) == 1024 * 1024
        assert any("truncated" in note for note in msg.notes)


class TestParseEmailAttachments:
    PDF = base64.b64encode(b"%PDF-1.4 data").decode()

    def test_attachment_metadata_and_content(self, parse: Parse) -> None:
        part = (
            'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{self.PDF}"
        )
        (att,) = parse(_multipart("Content-Type: text/plain\r\n\r\nsee file", part)).attachments
        assert (att.filename, att.content_type, att.size, att.inline) == (
            "a.pdf",
            "application/pdf",
            13,
            False,
        )
        assert (
            att.sha256 == hashlib.sha256(b"%PDF-1.4 data").hexdigest()
            and att.content == b"%PDF-1.4 data"
        )

    def test_rfc2231_filename_is_decoded(self, parse: Parse) -> None:
        part = (
            "Content-Type: text/plain\r\n"
            "Content-Disposition: attachment; filename*=utf-8''%C3%A4%20b.txt\r\n\r\nx"
        )
        assert parse(_multipart(part)).attachments[0].filename == "ä b.txt"

    def test_unnamed_part_gets_a_generated_name(self, parse: Parse) -> None:
        part = (
            f"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{self.PDF}"
        )
        assert parse(_multipart(part)).attachments[0].filename == "attachment-1.pdf"

    def test_inline_cid_image_is_an_inline_attachment(self, parse: Parse) -> None:
        part = (
            "Content-Type: image/png\r\nContent-ID: <logo@x>\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\niVBORw0K"
        )
        html = 'Content-Type: text/html\r\n\r\n<img src="cid:logo@x">'
        msg = parse(_multipart(html, part, subtype="related"))
        assert (msg.attachments[0].content_id, msg.attachments[0].inline) == ("logo@x", True)
        assert 'src="cid:logo@x"' in (msg.html or "")

    def test_oversized_attachment_keeps_metadata_only(self, parse: Parse) -> None:
        part = (
            'Content-Type: application/pdf; name="big.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{self.PDF}"
        )
        msg = parse(_multipart(part), max_attachment_bytes=5)
        assert (msg.attachments[0].content, msg.attachments[0].size) == (None, 13)
        assert "attachment big.pdf (13 bytes) over the limit, not stored" in msg.notes

    def test_winmail_dat_is_kept_and_noted(self, parse: Parse) -> None:
        part = (
            'Content-Type: application/ms-tnef; name="winmail.dat"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\neJ8+IgAA"
        )
        msg = parse(_multipart(part))
        assert msg.attachments[0].filename == "winmail.dat"
        assert "TNEF winmail.dat kept undecoded" in msg.notes

    def test_attached_message_is_stored_as_eml(self, parse: Parse) -> None:
        inner = "Content-Type: message/rfc822\r\n\r\nFrom: b@x\r\nSubject: Old one\r\n\r\nold body"
        (att,) = parse(_multipart("Content-Type: text/plain\r\n\r\nfwd", inner)).attachments
        assert att.filename == "Old one.eml" and b"old body" in (att.content or b"")


class TestParseEmailCorpus:
    def test_no_exception_escapes(self, parsed_corpus: ParsedCorpus) -> None:
        assert parsed_corpus.errors == {}
        assert len(parsed_corpus.messages) + len(parsed_corpus.invalid) == len(
            parsed_corpus.entries
        )

    def test_only_files_that_are_not_mail_are_invalid(self, parsed_corpus: ParsedCorpus) -> None:
        not_mail = {
            p
            for p in parsed_corpus.invalid
            if p not in NOT_MAIL_FILES and not p.startswith(NOT_MAIL_FOLDERS)
        }
        assert not_mail == set()
        assert set(parsed_corpus.invalid) >= NOT_MAIL_FILES

    def test_every_message_has_a_sender_or_a_note(self, parsed_corpus: ParsedCorpus) -> None:
        silent = [
            p for p, m in parsed_corpus.messages.items() if not m.sender_email and not m.notes
        ]
        assert silent == []

    def test_fields_are_well_formed(self, parsed_corpus: ParsedCorpus) -> None:
        for path, msg in parsed_corpus.messages.items():
            assert msg.subject and "\n" not in msg.subject and len(msg.subject) <= 998, path
            assert all(len(a.sha256) == 64 and a.filename for a in msg.attachments), path
            assert msg.message_id is None or (
                "<" not in msg.message_id and msg.message_id.strip() == msg.message_id
            )

    def test_imap_tools_expected_results_match(
        self, parsed_corpus: ParsedCorpus, corpus_dir: Path
    ) -> None:
        cases = []
        for expected in sorted((corpus_dir / "imap_tools/expected").rglob("*.json")):
            data = json.loads(expected.read_text())
            rel = expected.relative_to(corpus_dir / "imap_tools/expected").with_suffix(".eml")
            names = [a["filename"] for a in data["attachments"]]
            cases.append((f"imap_tools/messages/{rel}", data["subject"], data["from_"], names))
        assert len(cases) == 113
        assert _unexpected(parsed_corpus, cases) == {"unlisted": [], "now_matching": []}

    def test_zammad_expected_results_match(
        self, parsed_corpus: ParsedCorpus, corpus_dir: Path
    ) -> None:
        cases = []
        for expected in sorted((corpus_dir / "zammad/expected-json").glob("*.json")):
            data = json.loads(expected.read_text())
            names = [
                a["filename"]
                for a in data["attachments"]
                if not a["preferences"].get("content-alternative")
            ]
            cases.append(
                (f"zammad/mail/{expected.stem}.box", data["subject"], data["from_email"], names)
            )
        assert len(cases) == 106
        assert _unexpected(parsed_corpus, cases) == {"unlisted": [], "now_matching": []}


class TestLoopReasonOnCorpus:
    def test_every_sisimai_bounce_has_a_reason(self, parsed_corpus: ParsedCorpus) -> None:
        bounces = [
            p
            for p in parsed_corpus.messages
            if p.startswith("sisimai-bounces/maildir/") and "/not/" not in p
        ]
        assert len(bounces) == 789
        missed = {
            p for p in bounces if loop_reason(parsed_corpus.messages[p], envelope_from=None) is None
        }
        assert missed == set(UNDETECTED_BOUNCES)

    def test_sisimai_non_bounces_are_not_bounces(self, parsed_corpus: ParsedCorpus) -> None:
        messages = parsed_corpus.messages
        for name in ("is-not-bounce-01.eml", "is-not-bounce-02.eml"):
            assert (
                loop_reason(messages[f"sisimai-bounces/maildir/not/{name}"], envelope_from=None)
                is None
            )
        # Not a bounce but an auto-reply (Auto-Submitted) from postmaster: still no ticket.
        assert loop_reason(
            messages["sisimai-bounces/maildir/not/rb-issue-368-bug.eml"], envelope_from=None
        )

    def test_every_auto_submitted_message_has_a_reason(self, parsed_corpus: ParsedCorpus) -> None:
        flagged = [
            p
            for p, e in parsed_corpus.entries.items()
            if e["auto_submitted"] and p in parsed_corpus.messages
        ]
        assert flagged
        assert [
            p for p in flagged if loop_reason(parsed_corpus.messages[p], envelope_from=None) is None
        ] == []

    @pytest.mark.parametrize(
        "folder", ["imap_tools/messages/plain_emails/", "cpython-test_email/", "django-helpdesk/"]
    )
    def test_ordinary_messages_are_not_bounces(
        self, parsed_corpus: ParsedCorpus, folder: str
    ) -> None:
        ordinary = [
            p
            for p, e in parsed_corpus.entries.items()
            if p.startswith(folder)
            and not e["report"]
            and not e["auto_submitted"]
            and p in parsed_corpus.messages
        ]
        assert len(ordinary) >= 5
        reasons = {
            p: loop_reason(parsed_corpus.messages[p], envelope_from="someone@example.com")
            for p in ordinary
        }
        assert [p for p, r in reasons.items() if r == "bounce"] == []
