"""The private parts of aiosmtpd and mail-parser that DOXA builds on, checked on the installed
versions: pyproject.toml pins both to a minor series, and a release that changes these fails
here, by name, rather than as 451 answers or a quadratic header decoder in production."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import mailparser.addresses
import mailparser.utils
from aiosmtpd.smtp import SMTP

from doxa.gateway.mime import linear, loading

AIOSMTPD = f"aiosmtpd {version('aiosmtpd')}"
MAIL_PARSER = f"mail-parser {version('mail-parser')}"
SMTP_USE = "DoxaSMTP._data (doxa/gateway/smtp.py) reads DATA itself and calls it"
PATCH_USE = "doxa/gateway/mime/linear.py replaces it with a linear decoder"


def _parameters(function: Callable[..., Any]) -> list[str]:
    return [
        f"*{p.name}" if p.kind is p.VAR_POSITIONAL else p.name
        for p in inspect.signature(function).parameters.values()
    ]


def _private(name: str, parameters: list[str]) -> Callable[..., Any]:
    found: Callable[..., Any] | None = getattr(SMTP, name, None)
    assert found is not None, f"{AIOSMTPD} has no SMTP.{name}: {SMTP_USE}"
    assert _parameters(found) == parameters, (
        f"{AIOSMTPD}: SMTP.{name}{_parameters(found)} is not SMTP.{name}{parameters}: {SMTP_USE}"
    )
    return found


class TestAiosmtpd:
    def test_the_data_state_reset_renews_the_envelope(self) -> None:
        reset = _private("_set_post_data_state", ["self"])
        assert "_create_envelope" in reset.__code__.co_names, (
            f"{AIOSMTPD}: SMTP._set_post_data_state no longer renews the envelope: {SMTP_USE}"
        )
        _private("_create_envelope", ["self"])  # overridden: DoxaSMTP spools its envelopes

    def test_the_handler_hook_is_called_with_the_command_name(self) -> None:
        hook = _private("_call_handler_hook", ["self", "command", "*args"])
        assert inspect.iscoroutinefunction(hook), (
            f"{AIOSMTPD}: SMTP._call_handler_hook is no longer awaited: {SMTP_USE}"
        )

    def test_the_session_keeps_its_stream_reader_as_reader(self) -> None:
        connected = getattr(SMTP, "_cb_client_connected", None)
        assert connected is not None and "_reader" in connected.__code__.co_names, (
            f"{AIOSMTPD}: SMTP no longer keeps its stream reader as `_reader`: {SMTP_USE}"
        )


class TestMailParser:
    def test_both_modules_decode_headers_through_the_patched_name(self) -> None:
        for module in (mailparser.utils, mailparser.addresses):
            source = inspect.getsource(module)
            assert "from email.header import decode_header" in source, (
                f"{MAIL_PARSER}: {module.__name__} no longer imports email.header's "
                f"decode_header by name: {PATCH_USE}, and would miss it"
            )
            callers = [
                name
                for name, function in inspect.getmembers(module, inspect.isfunction)
                if function.__module__ == module.__name__
                and "decode_header" in function.__code__.co_names
            ]
            assert callers, f"{MAIL_PARSER}: nothing in {module.__name__} calls decode_header"

    def test_the_linear_decoder_is_installed_where_mail_is_loaded(self) -> None:
        assert loading.__name__ in sys.modules  # installs the decoder when imported
        assert mailparser.utils.decode_header is linear.decode_header, (
            f"{MAIL_PARSER}: mailparser.utils.decode_header is not ours: {PATCH_USE}"
        )
        assert mailparser.addresses.decode_header is linear.decode_header, (
            f"{MAIL_PARSER}: mailparser.addresses.decode_header is not ours: {PATCH_USE}"
        )
