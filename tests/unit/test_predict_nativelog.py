"""nativelog: what native code writes on fd 2 becomes JSON log records (issue 10, item 6)."""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import sys
from collections.abc import Iterator

import pytest
from fnvision_common import jsonlog
from predict_core.nativelog import emit, native_stderr_as_logs


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    jsonlog.configure("predict", "DEBUG", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_levels_of_captured_lines(stream: io.StringIO) -> None:
    captured = (
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        b"WARNING: something odd\n\n"
        b"E0101 12:00:00.000000   123 interpreter.cc:45] it broke\n"
        b'{"level": "INFO", "msg": "already json"}\n'
        b"plain text from somewhere\n"
    )
    emit(captured, logging.getLogger("litert"))
    records = _records(stream)
    assert [(r.get("level"), r["msg"]) for r in records] == [
        ("INFO", "Created TensorFlow Lite XNNPACK delegate for CPU."),
        ("WARNING", "something odd"),
        ("ERROR", "it broke"),
        ("INFO", "already json"),
        ("WARNING", "plain text from somewhere"),
    ]
    assert records[2]["where"] == "interpreter.cc:45" and records[0]["logger"] == "litert"


def test_c_level_writes_to_fd_2_are_captured(stream: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    libc = ctypes.CDLL(None)
    with native_stderr_as_logs("litert"):
        os.write(2, b"INFO: from a write(2)\n")
        libc.fputs(b"WARNING: from C stdio\n", ctypes.c_void_p.in_dll(libc, "stderr"))
        libc.fflush(None)
    assert [(r["level"], r["msg"]) for r in _records(stream)] == [
        ("INFO", "from a write(2)"),
        ("WARNING", "from C stdio"),
    ]
    os.write(2, b"after the block\n")
    assert "after the block" in capfd.readouterr().err  # fd 2 is back
