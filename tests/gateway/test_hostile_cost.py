"""Every processing step is linear with a small constant (issue 19, item 11): a hostile 5 MB
message costs well under 2 s of CPU, and eight of them do not hold up an ordinary message.

bench/mime_cost.py prints the CPU of each step for these shapes and more (bench/README.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.text import MAX_CONVERTED_TAGS, html_to_text, sanitize_html
from doxa.core.triage import language, similar
from tests.gateway.conftest import StartSmtp, message

Parse = Callable[..., InboundMessage]
SIZE = 5_000_000
CPU_BUDGET = 2.0  # seconds for a whole message; measured 0.1-0.8 s on the shared 2-core machine


def _single(ctype: str, body: str, subject: str = "Hostile") -> bytes:
    return message(subject, body).replace("text/plain", ctype).encode()


def _html(unit: str) -> bytes:
    return _single("text/html", unit * (SIZE // len(unit)))


SHAPES: dict[str, Callable[[], bytes]] = {
    "html &# repeated": lambda: _html("&#"),
    "html & repeated": lambda: _html("&"),
    "html &amp; repeated": lambda: _html("&amp;"),
    "html &ampx repeated": lambda: _html("&ampx"),
    "html < repeated": lambda: _html("<"),
    "html <a repeated": lambda: _html("<a"),
    "html deep <div>": lambda: _html("<div>"),
    "html unclosed <div": lambda: _html("<div "),
    "html <li> items": lambda: _html("<li>x"),
    "html table cells": lambda: _html("<table><tr><td>x"),
    "html comments opened": lambda: _html("<!--"),
    "html huge attribute": lambda: _single("text/html", f'<a title="{"x" * SIZE}">x</a>'),
    "plain long line": lambda: _single("text/plain", "x" * SIZE),
    "plain many lines": lambda: _single("text/plain", "a\r\n" * (SIZE // 3)),
    "plain quote depth": lambda: _single("text/plain", ">" * SIZE),
    "plain quote lines": lambda: _single("text/plain", "> > > quoted\r\n" * (SIZE // 14)),
    "enormous header": lambda: _single("text/plain", "Hello", subject="x" * 250_000),
}


def _cpu(step: Callable[[], object]) -> float:
    started = time.process_time()
    step()
    return time.process_time() - started


class TestEachShapeIsCheap:
    @pytest.mark.timing  # CPU seconds
    @pytest.mark.parametrize("shape", SHAPES)
    def test_a_5_mb_message_parses_in_well_under_the_budget(self, parse: Parse, shape: str) -> None:
        raw = SHAPES[shape]()
        msg: list[InboundMessage] = []
        assert _cpu(lambda: msg.append(parse(raw))) < CPU_BUDGET
        text = msg[0].text
        opening = f"{msg[0].subject}\n{text[:20_000]}"  # what triage reads (first_body)
        assert _cpu(lambda: (language.detect(opening), similar.vector(opening))) < CPU_BUDGET

    def test_entities_reach_the_text_as_characters(self) -> None:
        html = '<p>a &amp; b &lt;c&gt; &quot;d&quot; &#38; e&nbsp;f <a href="/?x=1&amp;y=2">l</a>'
        assert html_to_text(html) == 'a & b <c> "d" & e\xa0f [l](/?x=1&y=2)'

    def test_private_use_characters_of_the_input_stay_no_markup(self) -> None:
        assert html_to_text("<p>\ue001b\ue002 \ue000</p>") == "\ufffdb\ufffd \ufffd"

    def test_a_cut_is_noted(self) -> None:
        notes: list[str] = []
        html = "<br>x" * MAX_CONVERTED_TAGS + "<p>late</p>"
        assert "late" not in html_to_text(html, notes)
        assert "late" in sanitize_html(html, notes)
        cut = f"up to its tag number {MAX_CONVERTED_TAGS} (character {len(html) - 11} of "
        assert notes == [f"HTML body converted to text {cut}{len(html)})"]


@pytest.mark.slow
@pytest.mark.timing  # beside the parallel tests on a busy machine it once took 4.9 s, not 2
def test_eight_hostile_messages_delay_an_ordinary_one_by_at_most_2_s(
    start_smtp: StartSmtp,
) -> None:
    """The real path: SMTP, the intake worker and its parser processes (two, as by default).
    Timed against a control run just before, on the same app, so the machine's speed cancels."""
    smtp = start_smtp(parser_processes=2)

    def ticket_after_send(subject: str) -> float:
        sent = time.monotonic()
        smtp.send(message(subject, "Just a question."))
        while not [t for t in smtp.tickets() if t.subject == subject]:
            assert time.monotonic() - sent < 60
            time.sleep(0.02)
        return time.monotonic() - sent

    ticket_after_send("Warm-up")  # the parser processes start and load their models
    control = ticket_after_send("Control")
    for shape in list(SHAPES)[:8]:
        smtp.send(SHAPES[shape]())
    delayed = ticket_after_send("Ordinary")
    assert delayed <= control + 2.0, (control, delayed)
