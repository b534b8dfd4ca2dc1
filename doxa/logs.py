"""One log format for DOXA's lines and Uvicorn's: plain by default, JSON with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that narrate at INFO what our own lines already say (or, for aiosmtpd, every SMTP
# command, synchronously, on the loop the listener serves).
_QUIET = ("alembic", "mail.log")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the line's own fields (given as
    `extra={"fields": {...}}`, e.g. an intake outcome's) and the exception, if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((name, value) for name, value in fields.items() if name not in line)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def config(log_format: str = "plain") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the process, Uvicorn's loggers included."""
    formatter: dict[str, Any] = {"()": JsonFormatter} if log_format == "json" else {"format": PLAIN}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    uvicorn = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": uvicorn,
            **{name: {"level": "WARNING"} for name in _QUIET},
        },
    }


def configure(log_format: str = "plain") -> dict[str, Any]:
    """Apply the configuration and return it (Uvicorn is handed the same one)."""
    applied = config(log_format)
    logging.config.dictConfig(applied)
    return applied
