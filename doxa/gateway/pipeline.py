"""The one pipeline builder: `doxa serve`, `doxa ingest` (files and the pipe), every worker
process and the tests build the pipeline here.

Worker processes import this module (the builder is pickled by reference into them), so it
imports the channels' normalizers and nothing of the web app.
"""

from __future__ import annotations

from doxa.core.config import Settings
from doxa.core.enums import Channel
from doxa.core.intake.pipeline import Pipeline
from doxa.gateway import webhooks
from doxa.gateway.parsing import configured_email_normalizer


def build_pipeline(settings: Settings) -> Pipeline:
    """The one ingestion path, with each channel's way of reading its raw input."""
    limit = settings.max_attachment_bytes
    normalizers = {
        Channel.EMAIL: configured_email_normalizer(settings),
        Channel.FORM: webhooks.form_normalizer(limit),
        Channel.MAILGUN: webhooks.normalizer(webhooks.mailgun_message, settings),
        Channel.SENDGRID: webhooks.normalizer(webhooks.sendgrid_message, settings),
        Channel.POSTMARK: webhooks.normalizer(webhooks.postmark_message, settings),
    }
    return Pipeline(settings, normalizers)
