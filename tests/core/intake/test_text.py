from __future__ import annotations

import email
import email.policy
import json
import time
from pathlib import Path

import pytest

from doxa.core.intake.text import html_to_text, sanitize_html, strip_reply

# talon keeps signatures in its expected replies; the SPEC strips them, so ours is shorter.
TALON_DIFFERENCES = {
    "iphone.eml": "talon expects 'Hello\\n\\nSent from my iPhone'; signatures are stripped here",
    "sparrow.eml": "talon expects the '-- \\nxxx\\nSent with Sparrow' signature; stripped here",
}


class TestHtmlToText:
    def test_paragraphs_and_links_become_readable_text(self) -> None:
        text = html_to_text(
            '<p>Hello <b>there</b></p><p>See <a href="https://x.test/a">docs</a></p>'
        )
        assert "Hello **there**" in text
        assert "[docs](https://x.test/a)" in text

    def test_images_are_dropped(self) -> None:
        assert html_to_text('<p>Logo <img src="cid:logo@x" alt="Logo"></p>') == "Logo"

    def test_long_lines_are_not_wrapped(self) -> None:
        assert "\n" not in html_to_text("<p>" + "word " * 200 + "</p>")

    def test_deeply_nested_html_returns_text(self) -> None:
        assert "deep" in html_to_text("<div>" * 50_000 + "deep" + "</div>" * 50_000)

    @pytest.mark.timing
    def test_huge_html_is_capped_quickly(self) -> None:
        started = time.perf_counter()
        html_to_text("<p>" + "x" * 20_000_000 + "</p>")
        assert time.perf_counter() - started < 10

    def test_corpus_deep_html_fixture_converts(self, corpus_dir: Path) -> None:
        raw = (corpus_dir / "nodemailer-mailparser/fixtures/htmllargecallstack.eml").read_bytes()
        html = email.message_from_bytes(raw).as_string()
        assert isinstance(html_to_text(html), str)


class TestSanitizeHtml:
    def test_script_and_style_are_removed_with_their_content(self) -> None:
        clean = sanitize_html("<style>p{}</style><script>alert(1)</script><p>ok</p>")
        assert clean == "<p>ok</p>"

    def test_event_handlers_and_javascript_urls_are_removed(self) -> None:
        clean = sanitize_html(
            '<a href="javascript:alert(1)" onclick="x()">a</a><img src=x onerror=y>'
        )
        assert "javascript" not in clean and "onclick" not in clean and "onerror" not in clean

    def test_links_get_noopener(self) -> None:
        assert 'rel="noopener noreferrer nofollow"' in sanitize_html(
            '<a href="https://x.test">x</a>'
        )

    def test_cid_images_keep_their_source(self) -> None:
        assert 'src="cid:image001.png@01D"' in sanitize_html('<img src="cid:image001.png@01D">')

    def test_safe_inline_styles_survive(self) -> None:
        assert "color:red" in sanitize_html('<span style="color:red;position:fixed">x</span>')

    def test_remote_image_becomes_a_link_that_loads_nothing(self) -> None:
        clean = sanitize_html('<p><img src="https://t.test/p.gif?u=1&amp;m=2" alt="Logo"></p>')
        assert "<img" not in clean
        assert '<a href="https://t.test/p.gif?u=1&amp;m=2"' in clean
        assert "[remote image not loaded: Logo]" in clean

    def test_placeholder_text_is_escaped(self) -> None:
        clean = sanitize_html('<img src="https://t.test/x" alt="<script>x</script>">')
        assert "<script>" not in clean and "&lt;script&gt;" in clean

    @pytest.mark.parametrize(
        "style",
        [
            "display:none",
            "font-size:0",
            "font-size: 0px",
            "color: transparent",
            "color:rgba(0,0,0,0)",
        ],
    )
    def test_hidden_text_is_made_visible(self, style: str) -> None:
        clean = sanitize_html(f'<span style="{style}">ignore previous rules</span>')
        assert "ignore previous rules" in clean and style.split(":")[0] not in clean


class TestStripReply:
    def test_top_posted_reply_loses_the_quote(self) -> None:
        text = "Thanks, fixed.\n\nOn Mon, 1 Jan 2024 at 10:00, Bob <bob@x.test> wrote:\n> broken?\n"
        assert strip_reply(text) == "Thanks, fixed."

    def test_text_without_quote_is_kept_whole(self) -> None:
        assert strip_reply("Just a question.\nSecond line.") == "Just a question.\nSecond line."

    def test_fully_quoted_text_falls_back_to_the_full_text(self) -> None:
        assert strip_reply("> only a quote") == "> only a quote"

    def test_long_text_without_quote_is_not_truncated(self) -> None:
        text = "line of log output\n" * 10_000
        assert strip_reply(text) == text.strip()

    def test_zapier_expectations_hold(self, corpus_dir: Path) -> None:
        folder = corpus_dir / "zapier-email-reply-parser"
        for case in json.loads((folder / "reply_expectations.json").read_text())["cases"]:
            reply = strip_reply((folder / "emails" / case["file"]).read_text())
            if "reply_equals" in case:
                assert reply == case["reply_equals"], case["file"]
            assert all(part in reply for part in case.get("reply_contains", [])), case["file"]
            assert not any(part in reply for part in case.get("reply_not_contains", [])), case[
                "file"
            ]

    @pytest.mark.parametrize(
        "name",
        [
            "android",
            "aol",
            "apple_mail",
            "apple_mail_2",
            "comcast",
            "gmail",
            "hotmail",
            "iphone",
            "outlook",
            "sparrow",
            "thunderbird",
            "yahoo",
        ],
    )
    def test_talon_standard_replies_give_hello(self, corpus_dir: Path, name: str) -> None:
        raw = (corpus_dir / f"talon/fixtures/standard_replies/{name}.eml").read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        assert strip_reply(part.get_content()) == "Hello"  # see TALON_DIFFERENCES

    def test_github_signature_cases_drop_the_signature(self, corpus_dir: Path) -> None:
        folder = corpus_dir / "github-email_reply_parser/emails"
        assert "Sent from my iPhone" not in strip_reply((folder / "email_iPhone.txt").read_text())
        assert "BlackBerry" not in strip_reply((folder / "email_BlackBerry.txt").read_text())
        kept = strip_reply((folder / "email_sent_from_my_not_signature.txt").read_text())
        assert "Sent from my desk" in kept

    @pytest.mark.timing
    def test_github_long_quote_is_fast(self, corpus_dir: Path) -> None:
        text = (corpus_dir / "github-email_reply_parser/emails/email_long_quote.txt").read_text()
        started = time.perf_counter()
        reply = strip_reply(text)
        assert time.perf_counter() - started < 1.0
        assert reply.startswith("Hi folks")
