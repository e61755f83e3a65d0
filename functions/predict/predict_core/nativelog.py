"""Turn what native code writes on stderr (file descriptor 2) into JSON log records.

LiteRT logs from C++ straight to fd 2, e.g. ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
when the interpreter is built, and neither ``TF_CPP_MIN_LOG_LEVEL`` (measured: 1, 2 and 3) nor an
Interpreter option silences it. ``native_stderr_as_logs()`` points fd 2 at a temporary file for the
duration of a block, then logs every line written there as a record of the ``litert`` logger (so
``jsonlog`` writes it as one JSON line): ``INFO:``/``WARNING:``/``ERROR:`` prefixes (TFLite's minimal
logger) and absl's ``I0101 ...] msg`` set the level, anything else is a WARNING.

While the block runs, everything written to fd 2 by this process is captured, including our own log
lines (they are JSON already and are written back unchanged, in order). A function container serves
one call at a time, and the blocks are short (building or resizing the interpreter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

_LEVELS = {
    "VERBOSE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}
_PREFIX = re.compile(r"^(VERBOSE|DEBUG|INFO|WARNING|ERROR|FATAL): (.*)$")
_ABSL = re.compile(r"^([IWEF])\d{4} [0-9:. ]+\d+ (\S+:\d+)\] (.*)$")  # I0101 12:00:00.000000  123 file.cc:45] msg
_ABSL_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def _record(line: str) -> tuple[int, str, dict[str, str]]:
    """Level, message and extra fields of one captured line."""
    match = _PREFIX.match(line)
    if match:
        return _LEVELS[match.group(1)], match.group(2), {}
    match = _ABSL.match(line)
    if match:
        return _ABSL_LEVELS[match.group(1)], match.group(3), {"where": match.group(2)}
    return logging.WARNING, line, {}


def emit(captured: bytes, logger: logging.Logger) -> None:
    """Log each captured line: JSON lines (our own logs) are written back as they are."""
    for raw in captured.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                pass
            else:
                stream = _log_stream()
                stream.write(line + "\n")
                stream.flush()
                continue
        level, message, extra = _record(line)
        logger.log(level, message, extra={"native": True, **extra})


def _log_stream() -> IO[str]:
    """Where the JSON log handler writes (jsonlog.configure), else sys.stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            return handler.stream  # type: ignore[no-any-return]
    return sys.stderr


@contextlib.contextmanager
def native_stderr_as_logs(logger_name: str = "litert") -> Iterator[None]:
    """Capture fd 2 inside the block and log what was written there (see the module doc).

    If no temporary file can be made (no writable /tmp), the block runs uncaptured.
    """
    logger = logging.getLogger(logger_name)
    try:
        sink = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    with sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            emit(sink.read(), logger)
