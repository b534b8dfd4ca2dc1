from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from doxa.core.db import Base, UTCDateTime, utcnow


class ClassificationCorrection(Base):
    """A label given by staff: they changed what the classifier decided or suggested."""

    __tablename__ = "classification_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    field: Mapped[str] = mapped_column(String(16))  # "category" or "priority"
    predicted: Mapped[str | None] = mapped_column(String(64))
    corrected: Mapped[str] = mapped_column(String(64))
    # The text the model saw, so retraining does not depend on the ticket staying unchanged.
    text: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClassifierModel(Base):
    """A trained model version, stored in the database so every process loads the same one."""

    __tablename__ = "classifier_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(default=False)
    labels: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    training_size: Mapped[int] = mapped_column(default=0)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blob: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClassifierCategory(Base):
    """A category an admin added to the taxonomy; it needs no training data to be chosen."""

    __tablename__ = "classifier_category"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrainingExample(Base):
    """A labeled ticket from the help desk's own export (`doxa classifier train --data`).

    Once any exists, these (with corrections) replace the shipped seed set as training data.
    """

    __tablename__ = "training_example"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
