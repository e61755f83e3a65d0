"""A function's real fdk process, started and called by fnlocal's own agent code, for the contract tests
and the benches:

    with FdkProcess(Path("functions/predict/func.py"), env={"TOP_K": "3"}) as fn:
        reply = fn.call(b"...", headers={"Content-Type": "application/json"})
        reply.status, reply.headers["fn-http-status"], reply.json()

The process is a ``fnlocal.container.Container`` (``python -S`` running the fdk's main on a unix
socket, the agent's readiness check, chunked ``POST /call``), the request headers are
``fnlocal.protocol``'s (``call_headers``; ``trigger_request_headers`` with ``gateway=True``).
What is the tests' own: the process sees the dev venv's packages (fnlocal installs the function's lock
instead, which needs ``make wheels``), its output is kept for ``stderr()``/``json_logs()``, and /proc
figures for the memory tests and benches.

``TriggerProxy`` is a loopback HTTP server in front of the process that does what Fn's agent and HTTP
trigger do (``fnlocal.protocol``: trigger request rewrite, container status mapping, trigger response
rewrite), so that unmodified HTTP clients that need a TCP URL (tritonclient, ...) can be pointed at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sysconfig
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fnlocal import protocol
from fnlocal.config import Function
from fnlocal.container import Container, LogSink
from fnlocal.container import python_path as container_python_path
from triggers import loopback

COMMON = Path(__file__).resolve().parents[1] / "common"


@dataclass
class FdkReply:
    """One reply of the fdk: wire status, lower-case headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Parse the body as JSON."""
        return json.loads(self.body)

    @property
    def http_status(self) -> int:
        """The status an HTTP-trigger client would see (Fn-Http-Status if present, else the wire status)."""
        return int(self.headers.get("fn-http-status", self.status))


def python_path(function_dir: Path) -> str:
    """``/function:/python`` as on Fn: the function folder first, then the dev venv's site-packages.

    With ``python -S`` no ``.pth`` file is processed, so the project's own packages (installed
    editable) are not importable: an import from outside the function folder fails here as it would in
    the image. The one exception is ``fnvision_common``, which both functions declare in their
    requirements (in the image it is installed in /python): its source folder stands in for the
    editable install.
    """
    paths = sysconfig.get_paths()
    packages = dict.fromkeys([paths["purelib"], paths["platlib"], str(COMMON)])
    return container_python_path(function_dir, list(packages))


class _Output(LogSink):
    """Keeps the process's output lines (stdout and stderr) instead of writing them to a log."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def write(self, tag: str, line: str) -> None:
        self.lines.append(line)  # list.append is atomic: the container's pump thread is the only writer


@dataclass
class FdkProcess:
    """A started fdk process for one ``func.py``; one call at a time, as the agent's pool does."""

    func: Path
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: str = "handler"
    start_timeout: float = 20.0
    call_timeout: float = 120.0
    inherit_env: bool = True
    container: Container | None = None
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self.func = Path(self.func).resolve()
        # the container's socket folder goes in here; AF_UNIX paths are limited to ~107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="fdk-", dir="/tmp"))
        self._output = _Output()
        self._lock = threading.Lock()

    def start(self) -> FdkProcess:
        """Start the process; raises fnlocal's FnError (Fn's init failure or init timeout) if it does not."""
        env = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.update(self.env)
        env.update(FN_FORMAT="http-stream", PYTHONPATH=python_path(self.func.parent), PYTHONUNBUFFERED="1")
        fn = Function(app="tests", name=self.func.parent.name, fn_id=self.func.parent.name,
                      directory=self.func.parent, handler=self.entrypoint, memory_mb=0,
                      timeout_s=self.call_timeout, idle_timeout_s=0.0, config={})
        self.started_at = time.perf_counter()
        try:
            self.container = Container(fn, env, self.root, self._output, start_timeout_s=self.start_timeout)
        except BaseException:
            with contextlib.suppress(OSError):  # left in place if the container left something behind
                self.root.rmdir()
            raise
        return self

    def stop(self) -> None:
        """Stop the process group and remove its folders (an error if the container left anything)."""
        if self.container is not None:
            self.container.close(grace_s=5.0)
        with contextlib.suppress(FileNotFoundError):
            self.root.rmdir()

    def __enter__(self) -> FdkProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """Process id of the fdk."""
        assert self.container is not None, "not started"
        return self.container.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.container is not None and self.container.alive

    def call(
        self,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        call_id: str | None = None,
        gateway: bool = False,
        method: str = "POST",
        request_url: str = "http://127.0.0.1:8080/t/app/fn",
    ) -> FdkReply:
        """POST /call like the agent; with ``gateway=True`` the request an HTTP trigger makes of it."""
        assert self.container is not None, "not started"
        sent = list((headers or {}).items())
        if gateway:
            sent = protocol.trigger_request_headers(sent, method, request_url)
        sent = protocol.call_headers(sent, call_id or protocol.new_call_id(), self.call_timeout)
        with self._lock:
            status, out, data = self.container.post_call(sent, body, self.call_timeout)
        return FdkReply(status, {k.lower(): v for k, v in out}, data)

    def stderr(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return "\n".join(self._output.lines)

    def json_logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        lines: list[dict[str, Any]] = []
        for line in self._output.lines:
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def status_kb(self, key: str) -> int:
        """A `/proc/<pid>/status` figure in kB (VmRSS, VmHWM, ...)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def mapped_files(self) -> set[str]:
        """Paths of the files mapped into the process (shared libraries, ...)."""
        paths = set()
        for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.add(parts[5])
        return paths


class TriggerProxy:
    """A loopback HTTP server that forwards every request to an FdkProcess like an Fn HTTP trigger."""

    def __init__(self, fn: FdkProcess, base_path: str = "", sources: list[str] | None = None) -> None:
        """Serve `base_path + source` for each trigger source (any path when sources is None)."""
        self.fn = fn
        self.base_path = base_path.rstrip("/")
        self.sources = None if sources is None else {self.base_path + "/" + s.lstrip("/") for s in sources}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[loopback.Handler]:
        proxy = self

        class Handler(loopback.Handler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.read_body()
                if proxy.sources is not None and self.path.split("?")[0] not in proxy.sources:
                    self._fail(protocol.FnError(404, protocol.MSG_TRIGGER_NOT_FOUND))
                    return
                headers = dict(protocol.strip_hop(self.headers.items()))
                proxy.requests.append((self.path, headers))
                url = protocol.request_url("http", self.headers.get("Host", "localhost"), self.path)
                reply = proxy.fn.call(body, headers, gateway=True, method=self.command, request_url=url)
                error = protocol.map_container_status(reply.status)
                if error is not None:  # the agent answers a failed call itself
                    self._fail(error)
                    return
                status, out = protocol.trigger_response(reply.status, reply.headers.items())
                self.answer(status, reply.body, out)

            do_GET = do_POST  # noqa: N815

            def _fail(self, error: protocol.FnError) -> None:
                self.answer(error.status, error.body(), [("Content-Type", protocol.ERROR_CONTENT_TYPE)])

        return Handler

    @property
    def url(self) -> str:
        """host:port/base (the form tritonclient wants: no scheme)."""
        assert self.server is not None, "use it as a context manager"
        host, port = self.server.server_address[:2]
        return f"{host}:{port}{self.base_path}"

    def __enter__(self) -> TriggerProxy:
        self.server = loopback.serve(self._handler(), "trigger-proxy")
        return self

    def __exit__(self, *exc: object) -> None:
        loopback.close(self.server)
        self.server = None
