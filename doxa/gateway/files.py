"""The file edge of ingestion (`doxa ingest`): .eml files, mbox files and maildirs, fed
through the same pipeline as SMTP."""

from __future__ import annotations

import mailbox
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Channel
from doxa.core.intake.inbound import NotAMessage
from doxa.core.intake.loops import loop_reason
from doxa.core.intake.pipeline import Delivery, Pipeline, RawEvent, message_id_of
from doxa.core.intake.worker import process_event


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


def ingest(context: Context, pipeline: Pipeline, paths: list[Path], *, to: str,
           dry_run: bool = False) -> Counter[str]:  # fmt: skip
    """Feed every message through the pipeline (or only parse it); count the outcomes."""
    outcomes: Counter[str] = Counter()
    for _, raw in tqdm(list(raw_messages(paths)), unit="msg", desc="ingesting"):
        item = Delivery(Channel.EMAIL, raw, [to], None, message_id_of(raw))
        outcomes[_dry_run(pipeline, item) if dry_run else _run(context, pipeline, item)] += 1
    return outcomes


def _run(context: Context, pipeline: Pipeline, item: Delivery) -> str:
    with transaction(context.sessions) as db:
        accepted = pipeline.accept(db, item)
        event_id, status = accepted.id, accepted.status
    if status.value != "received":
        return status.value
    outcome = process_event(context.sessions, pipeline, event_id)
    return outcome.value if outcome else "skipped"


def _dry_run(pipeline: Pipeline, item: Delivery) -> str:
    try:
        msg = pipeline.normalize(RawEvent(0, item.channel, bytes(item.raw), {}))
    except NotAMessage as never:
        return f"would be rejected: {never.reason}"
    reason = loop_reason(msg, envelope_from=None)
    return f"would hold: {reason}" if reason else "would be a ticket or follow-up"
