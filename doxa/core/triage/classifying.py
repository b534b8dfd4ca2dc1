"""Classifying pending tickets in this process: the active model and one batch at a time.

Synchronous; `doxa.runtime.triage` schedules the batches (here, on a thread, or in a worker
process). Claims use FOR UPDATE SKIP LOCKED, so several processes sharing one PostgreSQL never
classify one ticket twice."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from doxa.core.config import Settings
from doxa.core.db import backend, transaction
from doxa.core.triage import labels, language, store
from doxa.core.triage.llm import ChatClassifier
from doxa.core.triage.service import Classifier, classify_pending

if TYPE_CHECKING:  # scikit-learn: imported when the model is loaded (store)
    from doxa.core.triage.text_classifier import TextClassifier

log = logging.getLogger(__name__)
_SEED_LOCK_KEY = 0x0D0C5EED  # PostgreSQL advisory lock: one process trains the first model


class Triage:
    """One process's classifier: the active model (or the chat model in front of it) and a pass
    over every pending ticket. The server has one; so has each worker process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        # One classifying thread per process (SQLite has no row locks to skip), and one
        # thread training the first model.
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._chat: ChatClassifier | None = None

    def close(self) -> None:
        if self._chat is not None:
            self._chat.close()

    def ensure_model(self) -> None:
        with transaction(self.sessions) as db:
            self.local_model(db)
        language.load()

    def join_pinned(self) -> None:
        """Mailboxes' pinned categories (SUPPORT_ADDRESSES addr=cat) join the taxonomy."""
        pinned = [box.category for box in self.settings.support_addresses if box.category]
        if pinned:
            with transaction(self.sessions) as db:
                labels.add_categories(db, pinned)

    def run_batch(self) -> int:
        """Classify up to BATCH pending tickets in one transaction; how many it classified."""
        with self._lock, transaction(self.sessions) as db:
            threshold = self.settings.ai_confidence_threshold
            return classify_pending(db, lambda: self.model(db), threshold=threshold)

    def model(self, db: Session) -> Classifier:
        local = self.local_model(db)
        if self.settings.ai_provider != "openai" or not self.settings.ai_base_url:
            return local
        if self._chat is None:
            self._chat = ChatClassifier(
                base_url=self.settings.ai_base_url,
                model=self.settings.ai_model,
                api_key=self.settings.ai_api_key,
                fallback=local,
                timeout=self.settings.ai_timeout_seconds,
            )
        # The taxonomy, not just the local model's labels: an admin's new category is one the
        # chat model can choose before any correction taught the local model.
        self._chat.use_categories(labels.categories(db))
        return self._chat

    def local_model(self, db: Session) -> TextClassifier:
        """The active model; the first caller on a fresh database trains it from the seed set."""
        model = store.load_active(db)
        if model is not None:
            return model
        # Trained and committed on its own: one thread per process, one process per database
        # (an advisory lock on PostgreSQL), so concurrent first calls never train twice.
        with self._model_lock, transaction(self.sessions) as own:
            backend(own).lock(own, _SEED_LOCK_KEY)
            return store.ensure_model(own, threshold=self.settings.ai_confidence_threshold)
