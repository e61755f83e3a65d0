"""A small HTTP server on 127.0.0.1 in a background thread: the webhook receivers and test fakes."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, whole bodies in and out, no access log (the owners log what matters)."""

    protocol_version = "HTTP/1.1"

    def read_body(self) -> bytes:
        """The request body (Content-Length framed; none without one)."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send a whole response: status, headers, Content-Length, body."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """No access log."""


def serve(handler: type[BaseHTTPRequestHandler], name: str, port: int = 0, poll_s: float = 0.1) -> ThreadingHTTPServer:
    """Listen on 127.0.0.1:`port` (0 = any free one) and serve from a daemon thread called `name`."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(poll_s,), name=name, daemon=True).start()
    return server


def close(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and release the port (None: nothing to do)."""
    if server is not None:
        server.shutdown()
        server.server_close()
