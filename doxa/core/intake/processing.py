"""Processing one stored intake event, or a batch of small ones: load, normalize, store.

Synchronous and idempotent: each call takes event ids and opens its own sessions, so it runs
wherever the execution plan puts it (a thread of the server, or a worker process; see
`doxa.runtime.plan`) and a crash leaves nothing the start-up sweep cannot finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.db import recycle_if_large, transaction
from doxa.core.enums import IntakeStatus
from doxa.core.errors import DomainError, Rejected, WorkerLost
from doxa.core.intake.inbound import InboundMessage
from doxa.core.intake.outcomes import Outcome
from doxa.core.intake.pipeline import Pipeline

log = logging.getLogger(__name__)
BATCH_EVENT_BYTES = 256 * 1024  # a larger event is processed alone, with its own deadline
# A batch of small events takes well under a second; one that takes this long holds something
# slow, and its events run alone, each with PROCESSING_TIMEOUT_SECONDS.
BATCH_DEADLINE_SECONDS = 10.0


class DatabaseUnavailable(Exception):
    """The event could not be processed because the database went away; retry it later."""


Reader = Callable[[int], InboundMessage | None]


def read_event(
    sessions: sessionmaker[Session], pipeline: Pipeline, event_id: int
) -> InboundMessage | None:
    """The event's raw input, loaded and normalized; None when it is processed already."""
    with transaction(sessions) as db:
        raw = pipeline.load(db, event_id)
        recycle_if_large(db, len(raw.raw) if raw else 0)
    return None if raw is None else pipeline.normalize(raw)


def process_event(
    sessions: sessionmaker[Session],
    pipeline: Pipeline,
    event_id: int,
    *,
    read: Reader | None = None,
) -> IntakeStatus | None:
    """Run one event through the pipeline; a failure is recorded on the event, never raised.

    Input that can never become a message (`Rejected`) is `rejected`, final; anything else
    that goes wrong is `failed`, for a retry.

    `read` loads and normalizes the event (here by default; the execution plan may do it in
    a worker process, so the raw message never enters this one). Only a lost database raises
    (DatabaseUnavailable): the event stays `received` for a retry.
    """
    try:
        msg = read(event_id) if read else read_event(sessions, pipeline, event_id)
        if msg is None:
            return None  # processed already, or not ours
        with transaction(sessions) as db:
            event = pipeline.apply(db, event_id, msg)
            recycle_if_large(db, sum(a.size for a in msg.attachments))
            if event is None:
                return None
            outcome = Outcome.of(event)
        outcome.log()  # after the commit
        return outcome.status
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from lost
    except Rejected as never:  # input that no retry can mend: kept, marked, not retried
        try:
            with transaction(sessions) as db:
                rejected = pipeline.reject(db, event_id, never)
                final = None if rejected is None else Outcome.of(rejected)
        except (OperationalError, InterfaceError) as lost:
            raise DatabaseUnavailable(str(lost)) from never
        if final is not None:
            final.log(logging.WARNING)
        return IntakeStatus.REJECTED
    except Exception as exc:
        return _record_failure(sessions, pipeline, event_id, exc)


@dataclass(frozen=True, slots=True)
class Batch:
    """What `process_batch` did: outcomes by event id, and the ids it left to be run alone."""

    done: dict[int, IntakeStatus]
    left: list[int]


def process_batch(
    sessions: sessionmaker[Session], pipeline: Pipeline, event_ids: list[int]
) -> Batch:
    """Small events together: one query loads them, one UPDATE claims them and one transaction
    (one commit, so one disk flush) stores them all, where each event alone took two
    transactions and its own round trips.

    Nothing is recorded as failed here: an event that cannot be read, or any error while
    storing (which rolls back the whole batch), leaves its events to `process_event`, each
    alone, so a failure stays with the event that caused it. Only a lost database raises.
    """
    try:
        with transaction(sessions) as db:
            raws = pipeline.load_small(db, event_ids, max_bytes=BATCH_EVENT_BYTES)
        loaded = {raw.id for raw in raws}
        left = [event_id for event_id in event_ids if event_id not in loaded]
        messages = []
        for raw in raws:
            try:
                messages.append((raw.id, pipeline.normalize(raw)))
            except Exception:  # run alone, it is rejected or failed with its reason
                left.append(raw.id)
        outcomes = []
        try:
            with transaction(sessions) as db:
                claimed = pipeline.claim(db, [event_id for event_id, _ in messages])
                for event_id, msg in messages:
                    if (event := claimed.get(event_id)) is not None:
                        outcomes.append(Outcome.of(pipeline.apply_claimed(db, event, msg)))
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            log.warning("an intake batch failed; its %d events run one by one", len(messages))
            return Batch({}, left + [event_id for event_id, _ in messages])
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from lost
    for outcome in outcomes:
        outcome.log()
    return Batch({outcome.event_id: outcome.status for outcome in outcomes}, left)


def process_elsewhere(
    sessions: sessionmaker[Session],
    pipeline: Pipeline,
    run: Callable[[int], IntakeStatus | None],
    event_id: int,
) -> IntakeStatus | None:
    """`process_event` run by `run` in a worker process; when that process gives up on the event
    (PROCESSING_TIMEOUT_SECONDS, or it died), the failure is recorded from here."""
    try:
        return run(event_id)
    except WorkerLost as exc:
        return _record_failure(sessions, pipeline, event_id, exc)


def batch_elsewhere(run: Callable[[list[int]], Batch], event_ids: list[int]) -> Batch:
    """`process_batch` run by `run` in a worker process; a batch whose process gave up (its
    deadline, or it died) committed nothing, so its events run one by one, each with its own
    deadline."""
    try:
        return run(event_ids)
    except WorkerLost as exc:
        log.warning("an intake batch of %d events was lost (%s)", len(event_ids), exc)
        return Batch({}, list(event_ids))


def _record_failure(
    sessions: sessionmaker[Session], pipeline: Pipeline, event_id: int, exc: BaseException
) -> IntakeStatus:
    """Mark the event `failed` and log that outcome; an error that does not say itself what
    went wrong (not a domain error, not a lost worker) is logged with its traceback."""
    try:
        with transaction(sessions) as db:
            failed = pipeline.fail(db, event_id, exc, reason=getattr(exc, "reason", None))
            outcome = None if failed is None else Outcome.of(failed)
    except (OperationalError, InterfaceError) as lost:
        raise DatabaseUnavailable(str(lost)) from exc
    if outcome is None:  # another run recorded the event's outcome first
        log.warning("intake event %s failed after it was processed: %s", event_id, exc)
    elif isinstance(exc, DomainError | WorkerLost):  # said in the error: no traceback needed
        outcome.log(logging.WARNING)
    else:
        outcome.log(logging.ERROR, error=exc)
    return IntakeStatus.FAILED
