"""The two pages mailed links open: choose a password (sign-up) and reset it.

Plain HTML forms, no JavaScript; the form posts back to the same path and is handled here by the
same services as the JSON API. Everything shown is escaped; the pages are never cached, send no
Referer (the token is in their URL), and the token is blanked from the access log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from doxa.api.deps import ContextDep, NetworkDep, SessionDep
from doxa.core.auth import Passwords
from doxa.core.errors import DomainError
from doxa.core.users import accounts
from doxa.core.users.models import User
from doxa.core.users.schemas import LinkPassword

router = APIRouter(prefix="/account", include_in_schema=False)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
PAGES: dict[str, tuple[str, Callable[..., User]]] = {
    "verify": ("Choose your password", accounts.verify_sign_up),
    "reset": ("Choose a new password", accounts.reset_password),
}
_STATUS = {"PermissionDenied": 403, "Conflict": 409, "TooManyRequests": 429, "Unavailable": 503}
_TOKEN = re.compile(r"(token|ticket)=[^&\s\"]+")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}.error{{color:#a00}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""
_FORM = """<p>At least 10 characters, and not a commonly used password.</p>
{error}<form method="post" action="{action}">
<input type="hidden" name="token" value="{token}">
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required
 minlength="10" maxlength="72">
<label for="again">The same again</label>
<input id="again" name="again" type="password" autocomplete="new-password" required>
<button type="submit">Set password</button>
</form>
"""


def _html(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status, HEADERS)


def _form(page: str, token: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = _FORM.format(error=shown, action=f"/account/{page}", token=escape(token, quote=True))
    return _html(PAGES[page][0], body, status)


def _show(page: str) -> Callable[..., Awaitable[HTMLResponse]]:
    async def show(token: Annotated[str, Query(max_length=128)] = "") -> HTMLResponse:
        return _form(page, token)

    show.__doc__ = f"The {page} page: a form to choose a password."
    return show


def _submit(page: str) -> Callable[..., HTMLResponse]:
    redeem = PAGES[page][1]

    def submit(
        db: SessionDep,
        context: ContextDep,
        network: NetworkDep,
        token: Annotated[str, Form(max_length=128)] = "",
        password: Annotated[str, Form(max_length=400)] = "",
        again: Annotated[str, Form(max_length=400)] = "",
    ) -> HTMLResponse:
        if password != again:
            return _form(page, token, "The two passwords differ.", 422)
        try:
            body = LinkPassword(token=token, password=password)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _form(page, token, f"{first['loc'][0]}: {first['msg']}", 422)
        return _redeem(redeem, db, context.passwords, body, page, network)

    submit.__doc__ = f"The {page} form's post: set the password the token allows."
    return submit


def _redeem(
    redeem: Callable[..., User],
    db: Session,
    passwords: Passwords,
    body: LinkPassword,
    page: str,
    network: str,
) -> HTMLResponse:
    try:
        user = redeem(db, passwords, token=body.token, password=body.password, network=network)
    except DomainError as exc:
        status = _STATUS.get(type(exc).__name__, 422)
        return _html(PAGES[page][0], f'<p class="error">{escape(exc.detail)}</p>', status)
    done = f"<p>The password of {escape(user.email)} is set. You can log in with it now.</p>"
    return _html("Password set", done)


for _page in PAGES:
    router.add_api_route(f"/{_page}", _show(_page), methods=["GET"])
    router.add_api_route(f"/{_page}", _submit(_page), methods=["POST"])


class _RedactTokens(logging.Filter):
    """Blanks `token=…` in access log lines (the mailed links carry one in their query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1=…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def keep_tokens_out_of_access_logs() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
