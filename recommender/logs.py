"""Log output for the CLI and every server process: readable text lines (the default) or JSON lines
(``RECOMMENDER_LOG_FORMAT=json``), one configuration for our loggers and uvicorn's alike."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_line(time: str, level: str, logger: str, process: int | None, message: str, **fields: Any) -> str:
    """A JSON log line's object: the same keys for every logger (the access log adds its fields)."""
    return json.dumps({"time": time, "level": level, "logger": logger, "process": process, "message": message,
                       **fields}, ensure_ascii=False, default=str)


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, process id (one per server worker), message, and the
    traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {"exception": self.formatException(record.exc_info)} if record.exc_info else {}
        return json_line(self.formatTime(record), record.levelname, record.name, record.process,
                         record.getMessage(), **extra)


def log_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: every record to stderr in ``log_format``, uvicorn's included (its
    own config would otherwise replace ours in each worker)."""
    formatter = {"()": f"{__name__}.JsonLines"} if log_format == "json" else {"format": TEXT}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    propagate = {"handlers": [], "propagate": True}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"main": formatter},
            "handlers": {"stderr": handler}, "root": {"handlers": ["stderr"], "level": level},
            "loggers": {"uvicorn": {**propagate, "level": level}, "uvicorn.error": propagate,
                        "uvicorn.access": propagate,
                        # not a line per write a read worker hands to the writer process
                        "httpx": {"level": "WARNING"}}}
