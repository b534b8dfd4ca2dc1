"""The webhook edge: `/inbound/form` and the Mailgun, SendGrid and Postmark endpoints.

Only the normalizers here: the pipeline (and so every worker process) imports them, and must
not import the web app. The routes are `doxa.gateway.webhooks.routes`, the intake behind them
`doxa.gateway.webhooks.intake`.
"""

from doxa.gateway.webhooks.forms import form_normalizer
from doxa.gateway.webhooks.providers import (
    mailgun_message,
    normalizer,
    postmark_message,
    sendgrid_message,
)

__all__ = [
    "form_normalizer",
    "mailgun_message",
    "normalizer",
    "postmark_message",
    "sendgrid_message",
]
