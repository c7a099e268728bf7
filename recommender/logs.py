"""Log output for the CLI and every server process: readable text lines (the default) or JSON lines
(``RECOMMENDER_LOG_FORMAT=json``), one configuration for our loggers and uvicorn's alike."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a record carries beyond the standard attributes: the access log's fields (service.observe).
FIELDS = ("method", "path", "status", "duration_ms", "request_id")


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, process id (one per server worker), message, the access
    fields it has, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                                "process": record.process, "message": record.getMessage()}
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: every record to stderr in ``log_format``, uvicorn's included (its
    own config would otherwise replace ours in each worker)."""
    formatter = {"()": f"{__name__}.JsonLines"} if log_format == "json" else {"format": TEXT}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    propagate = {"handlers": [], "propagate": True}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"main": formatter},
            "handlers": {"stderr": handler}, "root": {"handlers": ["stderr"], "level": level},
            "loggers": {"uvicorn": {**propagate, "level": level}, "uvicorn.error": propagate,
                        "uvicorn.access": propagate}}
