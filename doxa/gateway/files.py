"""The file edge of ingestion (`doxa ingest`): .eml files, mbox files and maildirs, fed
through the same pipeline as SMTP."""

from __future__ import annotations

import mailbox
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel
from doxa.core.errors import Rejected
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.mail_loops import loop_reason
from doxa.core.intake.models import IntakeEvent
from doxa.core.intake.pipeline import Pipeline, RawEvent, Submission, message_id_of
from doxa.core.intake.processing import process_event
from doxa.core.intake.ticketing import ACKNOWLEDGE
from doxa.core.triage import store
from doxa.core.triage.data import seed_examples
from doxa.core.triage.text_classifier import TextClassifier, train


def raw_messages(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(where, raw bytes) for every message under the paths: maildirs, mbox files, .eml files."""
    for path in paths:
        if (path / "cur").is_dir() and (path / "new").is_dir():
            box = mailbox.Maildir(path, create=False)
            for key in box.iterkeys():
                yield f"{path}/{key}", box.get_bytes(key)
        elif path.is_dir():
            yield from raw_messages(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file() and _is_mbox(path):
            archive = mailbox.mbox(path, create=False)
            try:
                for index, key in enumerate(archive.iterkeys()):
                    yield f"{path}#{index + 1}", archive.get_bytes(key)
            finally:
                archive.close()
        elif path.is_file():
            yield str(path), path.read_bytes()
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


# Outcomes a person should look at, each named with where the message came from.
NOTABLE = ("failed", "held", "rejected", "skipped_empty")


@dataclass
class Report:
    outcomes: Counter[str] = field(default_factory=Counter)
    notable: list[tuple[str, str]] = field(default_factory=list)  # (where, outcome and why)
    each: list[tuple[str, str]] = field(default_factory=list)  # dry run: every message's fate


class Filing:
    """What the classifier would file a new ticket as, for a dry run: the active model, or on a
    fresh database one trained from the seed set here and not stored (a few seconds, once)."""

    def __init__(self, context: Context, *, to: str) -> None:
        self.context, self.settings = context, context.settings
        boxes = {box.address: box.category for box in self.settings.support_addresses}
        self.pinned = boxes.get(to.lower())
        self._model: TextClassifier | None = None

    def model(self) -> TextClassifier:
        if self._model is None:
            with self.context.sessions() as db:
                self._model = store.load_active(db) or train(seed_examples())
        return self._model

    def __call__(self, msg: InboundMessage) -> tuple[str, str]:
        """(outcome to count, what this message would get), as triage would decide it."""
        if self.settings.ai_provider == "none":
            return "would be a ticket or follow-up", "not classified (AI_PROVIDER=none)"
        guess = self.model().predict(msg.subject, msg.text)
        confidence = f"{guess.category_confidence:.2f}"
        if guess.category_confidence < self.settings.ai_confidence_threshold:
            return "would go to triage", f"best guess {guess.category} at {confidence}"
        why = f"priority {guess.priority}, confidence {confidence}"
        if self.pinned:
            why = f"the mailbox's category (the model says {guess.category}), {why}"
        return f"would be filed as {self.pinned or guess.category}", why


def ingest(
    context: Context,
    pipeline: Pipeline,
    paths: list[Path],
    *,
    to: str,
    dry_run: bool = False,
    acknowledge: bool = False,
) -> Report:
    """Feed every message through the pipeline (or only parse it); count the outcomes and name
    the files that failed or were held. Empty files are skipped: there is nothing to keep.

    An archive is old mail: its senders are acknowledged only when `acknowledge` asks for it."""
    report = Report()
    filing = Filing(context, to=to) if dry_run else None
    # Log lines (a failed event's warning) are printed above the bar, not through it.
    with logging_redirect_tqdm():
        for where, raw in tqdm(list(raw_messages(paths)), unit="msg", desc="ingesting"):
            outcome, why = _one(context, pipeline, raw, to=to, filing=filing, ack=acknowledge)
            report.outcomes[outcome] += 1
            if filing is not None:
                report.each.append((where, f"{outcome}: {why}" if why else outcome))
            elif outcome in NOTABLE:
                report.notable.append((where, f"{outcome}: {why}" if why else outcome))
    return report


def _one(
    context: Context, pipeline: Pipeline, raw: bytes, *, to: str, filing: Filing | None, ack: bool
) -> tuple[str, str | None]:
    if not raw.strip():
        return "skipped_empty", None
    extra = {} if ack else {ACKNOWLEDGE: False}
    item = Submission(Channel.EMAIL, raw, [to], None, message_id_of(raw), extra)
    if filing is not None:
        return _dry_run(pipeline, item, filing)
    return _run(context, pipeline, item)


def _run(context: Context, pipeline: Pipeline, item: Submission) -> tuple[str, str | None]:
    """The outcome, and for a held or failed message the reason or error recorded on it."""
    with transaction(context.sessions) as db:
        accepted = pipeline.accept(db, item)
        event_id, status = accepted.id, accepted.status
    if accepted.outcome is not None:
        accepted.outcome.log()
    if status.value != "received":
        return status.value, None
    outcome = process_event(context.sessions, pipeline, event_id)
    if outcome is None:
        return "skipped", None
    if outcome.value not in NOTABLE:
        return outcome.value, None
    with context.sessions() as db:
        event = db.get(IntakeEvent, event_id)
        return outcome.value, (event.reason or event.error) if event else None


def _dry_run(pipeline: Pipeline, item: Submission, filing: Filing) -> tuple[str, str | None]:
    """What the message would become, with the category triage would give it as a new ticket
    (a follow-up keeps its ticket's). Threading is not looked up: that would read the database
    for every message."""
    try:
        msg = pipeline.normalize(RawEvent(0, item.channel, bytes(item.raw), {}))
    except Rejected as never:
        return "would be rejected", never.reason
    reason = loop_reason(msg, envelope_from=None)
    if reason:
        return "would hold", reason
    return filing(msg)
