"""Structured JSON logs, one object per line on stderr, with the Fn call id.

Part of ``fnvision-common`` (``common/``), the package both functions install (common/README.md).

Importing ``fdk`` adds a text handler to the root logger and sets the root level to DEBUG, so
botocore/urllib3 would print every request. ``configure`` replaces that handler's formatter
(one line per record, no duplicates), sets our level and raises the noisy libraries.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import IO, Any

call_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)

_NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "asyncio", "PIL", "fdk", "h5py", "absl")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; `extra=` fields become top-level keys."""

    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "fn": self.function,
            "call_id": call_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(function: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Install the JSON formatter on the root logger once (idempotent)."""
    root = logging.getLogger()
    formatter = JsonFormatter(function)
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    if stream is not None or not handlers:
        for handler in handlers:
            root.removeHandler(handler)
        handler = logging.StreamHandler(stream or sys.stderr)
        root.addHandler(handler)
        handlers = [handler]
    for handler in handlers:
        handler.setFormatter(formatter)
        # fdk's handler has a filter that needs fn_request_id; our formatter does not.
        handler.filters.clear()
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
