"""Run a function's real fdk process on a unix socket, as the Fn agent does, and talk to it.

Generic (any ``func.py``), used by the predict contract tests and the bench; reusable for
preprocess:

    with FdkProcess(Path("functions/predict/func.py"), env={"TOP_K": "3"}) as fn:
        reply = fn.call(b"...", headers={"Content-Type": "application/json"})
        reply.status, reply.headers["fn-http-status"], reply.json()

``TriggerProxy`` is a loopback HTTP server that behaves like an Fn HTTP trigger in front of the
process (request headers wrapped as ``Fn-Http-H-*`` with ``Fn-Intent: httprequest``, the reply's
``Fn-Http-Status`` and ``Fn-Http-H-*`` unwrapped), so that unmodified HTTP clients that need a TCP
URL (tritonclient, requests, ...) can be pointed at a function.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fnlocal.container import UnixHTTPConnection, fdk_command

DEADLINE = "2030-01-01T00:00:30Z"
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"}


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


def fdk_binary() -> str:
    """The `fdk` console script next to this Python (the dev venv's)."""
    candidate = Path(sys.executable).parent / "fdk"
    return str(candidate) if candidate.exists() else (shutil.which("fdk") or "fdk")


def python_path(function_dir: Path) -> str:
    """``/function:/python`` as on Fn: the function folder first, then the dev venv's site-packages.

    With ``python -S`` (``fnlocal.container.fdk_command``) no ``.pth`` file is processed, so the
    project's own packages (installed editable) are not importable: an import from outside the
    function folder fails here as it would in the image. The one exception is ``fnvision_common``,
    which both functions declare in their requirements (in the image it is installed in /python):
    its source folder stands in for the editable install.
    """
    paths = sysconfig.get_paths()
    shared = Path(__file__).resolve().parents[1] / "common"
    return os.pathsep.join(dict.fromkeys([str(function_dir), paths["purelib"], paths["platlib"], str(shared)]))


@dataclass
class FdkProcess:
    """A `fdk <func.py> handler` child process listening on `<tmp>/lsnr.sock`.

    Started like Fn (and fnlocal) start it: ``python -S`` running the fdk's main, cwd outside the
    repository (the socket folder), ``PYTHONPATH`` = function folder, then the packages.
    """

    func: Path
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: str = "handler"
    start_timeout: float = 20.0
    call_timeout: float = 120.0
    inherit_env: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self.func = Path(self.func).resolve()
        # AF_UNIX paths are limited to ~107 bytes: keep the directory short.
        self.dir = Path(tempfile.mkdtemp(prefix="fdk-", dir="/tmp"))
        self.socket_path = self.dir / "lsnr.sock"
        self._stderr = open(self.dir / "stderr.log", "wb")  # noqa: SIM115 - closed in stop()
        self._conn: UnixHTTPConnection | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FdkProcess:
        """Spawn the process and wait until the socket symlink appears (the agent's readiness rule).

        If it does not start, the process is stopped and its folder removed before raising.
        """
        env = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.update(self.env)
        env.update(
            FN_FORMAT="http-stream",
            FN_LISTENER=f"unix:{self.socket_path}",
            PYTHONPATH=python_path(self.func.parent),
            PYTHONUNBUFFERED="1",
        )
        self.started_at = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                [*fdk_command(), str(self.func), self.entrypoint],
                cwd=str(self.dir),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                start_new_session=True,
            )
            deadline = time.monotonic() + self.start_timeout
            while not self.socket_path.exists():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"fdk exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"fdk did not create {self.socket_path} in {self.start_timeout} s: {self.stderr()[-2000:]}"
                    )
                time.sleep(0.005)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the process group and remove the socket folder."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> FdkProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """Process id of the fdk."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    # -- calls -----------------------------------------------------------------------------
    def call(
        self,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        call_id: str | None = None,
        chunked: bool = True,
        gateway: bool = False,
        method: str = "POST",
        request_url: str = "http://127.0.0.1:8080/t/app/fn",
    ) -> FdkReply:
        """POST /call like the agent: Fn-Call-Id, Fn-Deadline, chunked body.

        With ``gateway=True`` the headers are wrapped as an HTTP trigger would (``Fn-Http-H-*``,
        except Content-Type) and ``Fn-Intent: httprequest`` is added.
        """
        out = {"Fn-Call-Id": call_id or uuid.uuid4().hex.upper()[:26], "Fn-Deadline": DEADLINE}
        for key, value in (headers or {}).items():
            if gateway and key.lower() != "content-type":
                out[f"Fn-Http-H-{key}"] = value
            else:
                out[key] = value
        if gateway:
            out.update({"Fn-Intent": "httprequest", "Fn-Http-Method": method, "Fn-Http-Request-Url": request_url})
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    if chunked:
                        out["Transfer-Encoding"] = "chunked"
                        conn.request("POST", "/call", body=_chunks(body), headers=out, encode_chunked=True)
                    else:
                        conn.request("POST", "/call", body=body, headers=out)
                    resp = conn.getresponse()
                    data = resp.read()
                    return FdkReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
                except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                    self._conn = None
                    conn.close()
                    if attempt or not self.alive():
                        raise
        raise AssertionError("unreachable")

    def _connection(self) -> UnixHTTPConnection:
        if self._conn is None:
            self._conn = UnixHTTPConnection(str(self.socket_path), self.call_timeout)
        return self._conn

    # -- observation -----------------------------------------------------------------------
    def stderr(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        self._stderr.flush()
        return (self.dir / "stderr.log").read_text(errors="replace") if self.dir.exists() else ""

    def json_logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        lines: list[dict[str, Any]] = []
        for line in self.stderr().splitlines():
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


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


class TriggerProxy:
    """A loopback HTTP server that forwards every request to an FdkProcess like an Fn HTTP trigger."""

    def __init__(self, fn: FdkProcess, base_path: str = "", sources: list[str] | None = None) -> None:
        """Serve `base_path + source` for each trigger source (any path when sources is None)."""
        self.fn = fn
        self.base_path = base_path.rstrip("/")
        self.sources = None if sources is None else {self.base_path + "/" + s.lstrip("/") for s in sources}
        self.requests: list[tuple[str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if proxy.sources is not None and self.path.split("?")[0] not in proxy.sources:
                    message = json.dumps({"message": "Trigger not found"}).encode()
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers.pop("Content-Length", None)
                proxy.requests.append((self.path, headers))
                url = f"http://{self.headers.get('Host', 'localhost')}{self.path}"
                reply = proxy.fn.call(body, headers, gateway=True, request_url=url)
                # triggerResponseWriter: keep Fn-Http-H-* (unwrapped) and Content-Type; status from
                # the wire if >= 400, else Fn-Http-Status.
                status = reply.status if reply.status >= 400 else reply.http_status
                self.send_response(status)
                for key, value in reply.headers.items():
                    if key.startswith("fn-http-h-"):
                        self.send_header(key[len("fn-http-h-") :], value)
                    elif key == "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """host:port/base (the form tritonclient wants: no scheme)."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}{self.base_path}"

    def __enter__(self) -> TriggerProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
