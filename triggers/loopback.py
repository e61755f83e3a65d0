"""A small HTTP server on 127.0.0.1 in a background thread: the webhook receivers and test fakes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
