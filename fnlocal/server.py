"""HTTP front of fnlocal (invoke, triggers, status) and the `FnLocal` Python API."""

from __future__ import annotations

import atexit
import json
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from fnlocal import protocol
from fnlocal.config import App, Function, load_app
from fnlocal.container import LogSink
from fnlocal.deps import ISOLATED, Deps
from fnlocal.protocol import FnError, Headers
from fnlocal.runtime import Runtime

DEFAULT_PORT = 8080
DETACHED_ACCEPT = "accept"
"""Detached `/invoke` answered 202 at once, the call runs on: OCI Functions, Fn's LB/runner-pool setup."""
DETACHED_WAIT = "wait"
"""Detached `/invoke` run to the end, then 200 with no body (or the call's error): a single self-hosted
Fn server (fnserver 0.3.753, observed), whose DetachedResponseWriter drops the body and whose
function's own status overwrites the 202 it starts with."""
DETACHED_MODES = (DETACHED_ACCEPT, DETACHED_WAIT)
INVOKE_ENDPOINT_ANNOTATION = "fnproject.io/fn/invokeEndpoint"
"""The function annotation `fn invoke` reads its URL from (fnproject/fn `fn_annotator.go`)."""


class _BadRequest(ValueError):
    """The request's body framing (Content-Length, chunk sizes) cannot be read: 400."""
_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], runtime: Runtime, detached: str = DETACHED_ACCEPT) -> None:
        super().__init__(address, _Handler)
        self.runtime = runtime
        self.detached = detached
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End keep-alive connections so no handler thread outlives the server."""
        with self._open_lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    """Routes: POST /invoke/{fn_id}, POST /invoke/{app}/{fn}, ANY /t/{app}/{source}, GET /status."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Access logs are off; every call is logged by the runtime."""

    @staticmethod
    def _size(text: bytes | str, base: int, what: str) -> int:
        try:
            size = int(text.strip() or "0", base)
        except ValueError:
            size = -1
        if size < 0:
            raise _BadRequest(f"bad {what}: {text[:40]!r}")
        return size

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = self._size(self.rfile.readline(65537).split(b";")[0], 16, "chunk size")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionError("client closed the connection mid-body")
                chunks.append(chunk)
                self.rfile.readline(65537)
        length = self._size(self.headers.get("Content-Length") or "0", 10, "Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: Headers, body: bytes) -> None:
        self._responded = True
        self.send_response_only(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _handle(self) -> None:
        runtime = self.server.runtime
        self._responded = False
        try:
            body = self._read_body()
            path = self.path.split("?", 1)[0]
            parts = [unquote(p) for p in path.split("/")[1:]]
            if parts[0] == "invoke":
                self._invoke(runtime, parts[1:], body)
            elif parts[0] == "t" and len(parts) >= 2 and parts[1]:
                self._trigger(runtime, parts[1], "/" + "/".join(parts[2:]), body)
            elif parts[0] == "v2" and self.command == "GET":
                data = json.dumps(self._lookup(runtime, parts[1:], urlsplit(self.path).query)).encode()
                self._send(200, [("Content-Type", "application/json")], data)
            elif path == "/status" and self.command == "GET":
                data = json.dumps(runtime.status(), indent=1).encode()
                self._send(200, [("Content-Type", "application/json")], data)
            else:
                raise FnError(404, protocol.MSG_PATH_NOT_FOUND)
        except FnError as exc:
            # Raised before any call exists (unknown app/function/trigger/path, wrong method): Fn answers
            # these from its lookups, with no Fn-Call-Id (a call's own errors carry one: Runtime.call).
            self._send(exc.status, [("Content-Type", protocol.ERROR_CONTENT_TYPE), *exc.headers], exc.body())
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except _BadRequest as exc:
            self._fail(400, protocol.MSG_BAD_REQUEST, str(exc))
        except Exception:  # noqa: BLE001 - a client must always get an answer
            self._fail(500, protocol.MSG_INTERNAL, traceback.format_exc().rstrip())

    def _fail(self, status: int, message: str, detail: str) -> None:
        """Answer an error (unless a response already started) and close the connection."""
        self.close_connection = True  # the request stream may be out of step: do not reuse it
        self.server.runtime.log.write("fnlocal", f"{self.command} {self.path}: {status} {detail}")
        if self._responded:
            return
        try:
            self._send(status, [("Content-Type", protocol.ERROR_CONTENT_TYPE), ("Connection", "close")],
                       protocol.error_body(message))
        except OSError:
            pass

    def _invoke(self, runtime: Runtime, parts: list[str], body: bytes) -> None:
        if self.command != "POST":
            raise FnError(405, protocol.MSG_METHOD_NOT_ALLOWED)
        if len(parts) == 1 and parts[0]:
            fn = runtime.find_id(parts[0])
        elif len(parts) == 2 and all(parts):
            fn = runtime.find(parts[0], parts[1])
        else:
            raise FnError(404, protocol.MSG_PATH_NOT_FOUND)
        headers = list(self.headers.items())
        if (protocol.header(headers, "Fn-Invoke-Type") or "").lower() == "detached":
            if self.server.detached == DETACHED_WAIT:
                result = runtime.call(fn, headers, body, detached=True)
                self._send(result.status, result.headers, result.body if result.status != 200 else b"")
            else:
                call_id = runtime.call_detached(fn, headers, body)
                self._send(202, [("Fn-Call-Id", call_id)], b"")
            return
        result = runtime.call(fn, headers, body)
        self._send(result.status, result.headers, result.body)

    @staticmethod
    def _lookup(runtime: Runtime, parts: list[str], query: str) -> dict[str, Any]:
        """The read side of Fn's v2 API that `fn invoke` uses to find a function (fnlocal: one app):
        `GET /v2/apps?name=` and `/v2/fns?app_id=&name=` (lists, empty when nothing matches), and
        `GET /v2/apps/{id}`, `/v2/fns/{id}` (404 `App not found` / `Fn not found`)."""
        args = {k: v[-1] for k, v in parse_qs(query).items()}
        app = runtime.app
        app_item = {"id": app.app_id, "name": app.name}

        def fn_item(fn: Function) -> dict[str, Any]:
            return {"id": fn.fn_id, "name": fn.name, "app_id": app.app_id, "memory": fn.memory_mb,
                    "timeout": fn.timeout_s, "idle_timeout": fn.idle_timeout_s,
                    "annotations": {INVOKE_ENDPOINT_ANNOTATION: f"{runtime.url}/invoke/{fn.fn_id}"}}

        if parts == ["apps"]:
            return {"items": [app_item] if args.get("name", app.name) == app.name else []}
        if len(parts) == 2 and parts[0] == "apps":
            if parts[1] != app.app_id:
                raise FnError(404, protocol.MSG_APP_NOT_FOUND)
            return app_item
        if parts == ["fns"]:
            if args.get("app_id", app.app_id) != app.app_id:
                return {"items": []}
            return {"items": [fn_item(fn) for fn in app.functions.values() if args.get("name", fn.name) == fn.name]}
        if len(parts) == 2 and parts[0] == "fns":
            return fn_item(runtime.find_id(parts[1]))
        raise FnError(404, protocol.MSG_PATH_NOT_FOUND)

    def _trigger(self, runtime: Runtime, app: str, source: str, body: bytes) -> None:
        fn = runtime.find_trigger(app, source)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        url = protocol.request_url("http", host, self.path)
        headers = protocol.trigger_request_headers(self.headers.items(), self.command, url)
        result = runtime.call(fn, headers, body)
        status, out_headers = protocol.trigger_response(result.status, result.headers)
        self._send(status, out_headers, result.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class FnLocal:
    """A local Fn server for one app folder; use as a context manager or call start()/stop().

    `env_overrides` are added to every function's config (they win over app.yaml and func.yaml);
    a value may contain `${FNLOCAL_URL}`, replaced by this server's base URL.

    `deps="isolated"` (default): each function sees only its folder and its own requirements.txt,
    installed once like `fn build` into `deps_dir` (default `$FNLOCAL_DEPS_DIR` or
    `<app dir>/.local/fnlocal/deps`) by `start()`, which raises `DepsError` if pip fails.
    `deps="venv"`: the dev venv's site-packages instead (quick iteration; not what Fn does).

    `detached="accept"` (default): a detached `/invoke` gets 202 at once and runs on, as on OCI;
    `detached="wait"`: it runs to the end and gets 200 with no body, as on a self-hosted Fn server.
    """

    def __init__(self, app_dir: str | Path = ".", port: int = 0, *, host: str = "127.0.0.1",
                 env_overrides: Mapping[str, str] | None = None, max_containers: int = 4,
                 queue_timeout_s: float = 10.0, start_timeout_s: float = 5.0,
                 log: IO[str] | str | Path | None = None, fdk_command: list[str] | None = None,
                 deps: str = ISOLATED, deps_dir: str | Path | None = None,
                 detached: str = DETACHED_ACCEPT) -> None:
        if detached not in DETACHED_MODES:
            raise ValueError(f"detached must be one of {DETACHED_MODES}, got {detached!r}")
        self.detached = detached
        self.app: App = load_app(app_dir, env_overrides)
        self.deps = Deps(deps, deps_dir, app_root=Path(app_dir).resolve(), notify=self._notice)
        self._address = (host, port)
        self._log_file: IO[str] | None = open(log, "a") if isinstance(log, str | Path) else None  # noqa: SIM115
        self._log = LogSink(self._log_file or (log if not isinstance(log, str | Path) else None))
        self._max_containers = max_containers
        self._queue_timeout_s = queue_timeout_s
        self._start_timeout_s = start_timeout_s
        self._fdk_command = fdk_command
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The running agent (after start())."""
        if self._runtime is None:
            raise RuntimeError("FnLocal is not started")
        return self._runtime

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:8080` (after start())."""
        if self._server is None:
            raise RuntimeError("FnLocal is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _notice(self, message: str) -> None:
        """A line for the log, and for the terminal too when the log is a file."""
        self._log.write("fnlocal", message)
        if self._log_file is not None:
            print(f"fnlocal: {message}", file=sys.stderr, flush=True)

    def start(self) -> FnLocal:
        """Install missing function deps (once, cached), then bind the port and serve in a thread."""
        if self._server is not None:
            return self
        try:
            for fn in self.app.functions.values():  # before any container: pip is never in a start timeout
                self.deps.prepare(fn)
        except BaseException:
            self.stop()
            raise
        self._runtime = Runtime(self.app, log=self._log, fdk_command=self._fdk_command, deps=self.deps,
                                max_containers=self._max_containers, queue_timeout_s=self._queue_timeout_s,
                                start_timeout_s=self._start_timeout_s)
        try:
            self._server = _Server(self._address, self._runtime, self.detached)
        except BaseException:
            self._runtime.close()
            raise
        self._runtime.url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="fnlocal-http", daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving, stop every container and remove their sockets; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._runtime is not None:
            self._runtime.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        atexit.unregister(self.stop)

    def fn_id(self, app: str, function: str) -> str:
        """The stable id of a function (as in /invoke/{fn_id})."""
        if app != self.app.name or function not in self.app.functions:
            raise KeyError(f"no function {app}/{function}")
        return self.app.functions[function].fn_id

    def invoke_url(self, app: str, function: str) -> str:
        """`<url>/invoke/<fn_id>` for a function."""
        return f"{self.url}/invoke/{self.fn_id(app, function)}"

    def trigger_url(self, app: str, source: str) -> str:
        """`<url>/t/<app>/<source>` for an HTTP trigger source (with or without leading `/`)."""
        return f"{self.url}/t/{app}/{source.lstrip('/')}"

    def status(self) -> dict[str, Any]:
        """The same data as GET /status."""
        return self.runtime.status()

    def __enter__(self) -> FnLocal:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
