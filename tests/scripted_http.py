"""A real HTTP/1.1 server on 127.0.0.1 that answers each POST with the next step of a script.

Steps: ``(status, headers, body)``; a callable ``(body, headers) -> (status, headers, body)``; a
``ConnectionError`` instance (read the request, then close the connection without answering); a
``TimeoutError`` instance (answer nothing for ``stall_s``, then close). When the script is empty it
answers ``200 ok``. It records every request and counts the TCP connections it accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from triggers import loopback

Answer = tuple[int, dict[str, str], bytes]


class ScriptedServer:
    def __init__(self, path: str = "/", stall_s: float = 1.0) -> None:
        self.script: list[Any] = []
        self.seen: list[dict[str, Any]] = []
        self.connections = 0
        self.stall_s = stall_s
        self._lock = threading.Lock()
        owner = self

        class Handler(loopback.Handler):
            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner.connections += 1

            def do_POST(self) -> None:  # noqa: N802
                body = self.read_body()
                headers = dict(self.headers)
                with owner._lock:
                    owner.seen.append({"path": self.path, "headers": headers, "body": body})
                    step = owner.script.pop(0) if owner.script else (200, {}, b"ok")
                if isinstance(step, TimeoutError):
                    time.sleep(owner.stall_s)
                if isinstance(step, (ConnectionError, TimeoutError)):
                    self.close_connection = True
                    return
                status, extra, data = step(body, headers) if callable(step) else step
                self.answer(status, data, extra.items())

        self.server = loopback.serve(Handler, "scripted-http", poll_s=0.05)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        loopback.close(self.server)


@contextmanager
def scripted_server(path: str = "/", stall_s: float = 1.0) -> Iterator[ScriptedServer]:
    server = ScriptedServer(path, stall_s)
    try:
        yield server
    finally:
        server.close()
