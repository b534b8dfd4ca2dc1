"""Background classification: kicked after each new ticket, and on a timer for anything left
pending (a crash, a restart, a model that failed); retraining on request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio
from sqlalchemy.orm import Session, sessionmaker

from doxa.core.config import Settings
from doxa.core.errors import Conflict
from doxa.core.triage.classifying import Triage
from doxa.core.triage.models import ClassifierModel
from doxa.core.triage.service import BATCH
from doxa.core.triage.similar import SimilarTickets
from doxa.core.triage.training import Train, retrain, train_here
from doxa.runtime.loops import wait_at_most
from doxa.runtime.pacing import Pacer
from doxa.runtime.threads import on_daemon_thread

log = logging.getLogger(__name__)
INTAKE_PATIENCE_SECONDS = 1.0  # a batch waits at most this long for intake to catch up


class TriageRunner:
    """Schedules classification: kicked after each new ticket, and on a timer.

    `classify` is one batch, run on a thread of this process: `local.run_batch` by default;
    the execution plan may have it wait on a worker process instead, so the model's CPU stays
    off the API's GIL (`doxa.runtime.plan`).
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        every: float = 30.0,
        train: Train = train_here,
        local: Triage | None = None,
        classify: Callable[[], int] | None = None,
        pacer: Pacer | None = None,
        intake_caught_up: asyncio.Event | None = None,
    ) -> None:
        self.settings, self.sessions, self.every = settings, sessions, every
        self.pacer = pacer  # each batch waits for a quiet moment at the edges (bounded)
        self.intake_caught_up = intake_caught_up  # and for new mail to be tickets (bounded)
        self.train = train  # where retraining runs: here, or waiting on a worker process
        self.local = local or Triage(settings, sessions)  # this process's classifier
        self.similar = SimilarTickets()  # this process's index of ticket vectors
        # One batch per call: a worker process shared with intake is handed back in between.
        self.classify = classify or self.local.run_batch
        self.training = False
        self._kick = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._training_task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.ai_provider != "none"

    def classify_soon(self) -> None:
        """Ask for a run soon, from any thread; every pending ticket is picked up, not just this."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._kick.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:  # the database may be down at start: serving (503s) must not depend on this
            await anyio.to_thread.run_sync(self.local.join_pinned)
        except Exception:
            log.warning("could not add the mailboxes' pinned categories yet", exc_info=True)
        if self.enabled:
            self._task = asyncio.create_task(self._run())

    def retrain_soon(self) -> None:
        """Start training a new version in the background; Conflict while one is training."""
        if self.training or self._loop is None:
            raise Conflict(
                "a classifier is being trained already"
                if self.training
                else "the service is not running"
            )
        self.training = True
        self._loop.call_soon_threadsafe(self._start_training)

    def _start_training(self) -> None:
        self._training_task = asyncio.create_task(self._train())

    async def _train(self) -> None:
        try:
            row = await anyio.to_thread.run_sync(self._retrain)
            log.info("classifier %s trained on %d examples", row.version, row.training_size)
        except Exception:
            log.exception("retraining failed; the previous version stays active")
        finally:
            self.training, self._training_task = False, None

    def _retrain(self) -> ClassifierModel:
        threshold = self.settings.ai_confidence_threshold
        return retrain(self.sessions, threshold=threshold, train=self.train)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._training_task is not None:  # a thread cannot be cancelled: let it finish
            await asyncio.gather(self._training_task, return_exceptions=True)
        self.local.close()

    async def _run(self) -> None:
        try:  # a fresh install trains its first model from the seed set now, not on demand
            await on_daemon_thread("doxa-classifier-load", self.local.ensure_model)
            await anyio.to_thread.run_sync(self.local.join_pinned)  # if start-up could not
        except Exception:
            log.exception("could not load or train the classifier; retrying on the next run")
        while True:  # the first pass, at start-up, takes what a crash left pending
            self._kick.clear()
            try:
                while await self._classify_batch() >= BATCH:
                    pass  # more may be pending
            except Exception:
                log.exception("classification run failed; retrying later")
            await wait_at_most(self._kick, self.every)

    async def _classify_batch(self) -> int:
        if self.pacer is not None:
            await self.pacer.quiet()
        # Intake first: classifying shares the worker processes with it, and took a quarter of
        # their time while a flood of posts was still becoming tickets (drain of 10,000: 27 s).
        if self.intake_caught_up is not None:
            await wait_at_most(self.intake_caught_up, INTAKE_PATIENCE_SECONDS)
        return await anyio.to_thread.run_sync(self.classify)
