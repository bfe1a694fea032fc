"""Log lines with time, level and logger, as text or as JSON (`RECSVC_LOG_FORMAT=json`,
one object per line for log collectors), the same in every worker process and for
uvicorn's own loggers. Each worker configures itself when its app is created: a
multi-worker server starts its workers as new processes, which inherit no logging
setup from the parent (the service's INFO lines used to be lost there)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT)


def configure(level: str, fmt: str) -> None:
    """The root logger: one handler on standard error, this level and format (uvicorn's
    loggers propagate to it: `uvicorn_config`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def uvicorn_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers through the same format as ours."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"recsvc": {"()": f"{__name__}.formatter", "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "recsvc"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "propagate": True, "level": level.upper()}
                    for name in ("uvicorn", "uvicorn.error")},
    }
