"""The webhook edge: `/inbound/form` and the Mailgun, SendGrid and Postmark endpoints."""

from doxa.gateway.webhooks.forms import form_normalizer
from doxa.gateway.webhooks.intake import WebhookIntake
from doxa.gateway.webhooks.providers import (
    mailgun_message,
    normalizer,
    postmark_message,
    sendgrid_message,
)
from doxa.gateway.webhooks.routes import router

__all__ = [
    "WebhookIntake",
    "form_normalizer",
    "mailgun_message",
    "normalizer",
    "postmark_message",
    "router",
    "sendgrid_message",
]
