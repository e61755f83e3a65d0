"""The container log must not turn a shutdown into a traceback."""

from __future__ import annotations

import io

from fnlocal.container import LogSink


def test_lines_are_tagged_and_dropped_after_the_log_is_closed() -> None:
    stream = io.StringIO()
    sink = LogSink(stream)
    sink.write("vision/predict pid=1 call=abc", "hello")
    assert stream.getvalue() == "[vision/predict pid=1 call=abc] hello\n"
    stream.close()
    sink.write("fnlocal", "POST /invoke/x: 500 internal error")  # in flight during stop(): no ValueError
