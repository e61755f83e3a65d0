"""One hot container: an `fdk func.py handler` process listening on a unix socket."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from fnlocal import protocol
from fnlocal.config import Function
from fnlocal.protocol import FnError, Headers

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SOCKET_NAME = "lsnr.sock"
_RECONNECT_AFTER_S = 30.0  # the fdk closes idle keep-alive connections after 75 s
_CHUNK = 64 * 1024


class LogSink:
    """One log for every container's stdout/stderr, each line tagged with function and call id."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, tag: str, line: str) -> None:
        """Write one tagged line (dropped once the log file is closed: a request still in flight
        while `FnLocal.stop()` runs must not turn shutdown into a traceback)."""
        stream = self._stream or sys.stderr
        with self._lock:
            if stream.closed:
                return
            stream.write(f"[{tag}] {line}\n")
            stream.flush()


def fdk_command() -> list[str]:
    """Run the fdk like Fn's image does: no site processing, packages only via PYTHONPATH.

    The Fn image installs requirements with `pip install --target /python` and sets
    `PYTHONPATH=/function:/python`, running `/python/bin/fdk`. Here the same `--target` install lives in
    fnlocal's deps cache (see `fnlocal.deps`); `-S` keeps the dev venv's site-packages (and its `.pth`
    files) out, so the container sees the function folder and its own packages only. The fdk's console
    script is not used because its shebang names the dev venv's interpreter (without `-S`).
    """
    return [sys.executable, "-S", "-c", "import sys; from fdk.scripts.fdk import main; sys.exit(main())"]


def python_path(function_dir: Path, deps_paths: Sequence[str]) -> str:
    """PYTHONPATH for a container: the function folder, then its packages (`/function:/python`)."""
    return os.pathsep.join([str(function_dir), *deps_paths])


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    total, stack, seen = 0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE_SIZE
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over an AF_UNIX socket, with `Host: localhost` like the agent's request."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Container:
    """A started fdk process; one call at a time (the pool guarantees it)."""

    def __init__(self, fn: Function, env: Mapping[str, str], root: Path, log: LogSink,
                 command: list[str] | None = None, start_timeout_s: float = 5.0) -> None:
        self.fn = fn
        self.dir = Path(tempfile.mkdtemp(prefix="c", dir=root))
        self.socket_path = str(self.dir / SOCKET_NAME)
        if len(self.socket_path.encode()) > 107:
            raise FnError(502, protocol.MSG_INIT_FAIL)
        self._log = log
        self.call_id: str | None = None
        self.call_deadline: float | None = None  # monotonic
        self.kill_reason: str | None = None
        self.busy = False
        self.calls = 0
        self.last_used = time.monotonic()
        self.rss_bytes = 0
        self._conn: UnixHTTPConnection | None = None
        self._conn_used = 0.0
        full_env = dict(env, FN_LISTENER=f"unix:{self.socket_path}", HOME=str(self.dir), TMPDIR=str(self.dir))
        started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                [*(command or fdk_command()), str(fn.func_py), fn.handler],
                cwd=self.dir, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.pid = self.proc.pid
        self._pump = threading.Thread(target=self._pump_logs, name=f"fnlocal-log-{self.pid}", daemon=True)
        self._pump.start()
        try:
            self._wait_ready(started + start_timeout_s)
        except FnError:
            self.close()
            raise
        self.start_ms = (time.monotonic() - started) * 1000

    @property
    def alive(self) -> bool:
        """True while the process runs and nobody decided to kill it."""
        return self.kill_reason is None and self.proc.poll() is None

    def _pump_logs(self) -> None:
        assert self.proc.stdout is not None
        tag = f"{self.fn.app}/{self.fn.name} pid={self.pid}"
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log.write(f"{tag} call={self.call_id or '-'}", line)
        self.proc.stdout.close()

    def _wait_ready(self, deadline: float) -> None:
        """Wait for the fdk's `lsnr.sock` symlink, then check it as Fn's checkSocketDestination does."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FnError(502, protocol.MSG_INIT_FAIL)
            if os.path.lexists(self.socket_path):
                if os.path.islink(self.socket_path):
                    target = os.readlink(self.socket_path)
                    if os.path.dirname(target) not in ("", "."):
                        raise FnError(502, protocol.MSG_INIT_FAIL)
                try:
                    if stat.S_ISSOCK(os.stat(self.socket_path).st_mode):
                        return
                except OSError:
                    pass
                raise FnError(502, protocol.MSG_INIT_FAIL)
            time.sleep(0.003)
        raise FnError(504, protocol.MSG_INIT_TIMEOUT)

    def post_call(self, headers: Headers, body: bytes, timeout_s: float) -> tuple[int, Headers, bytes]:
        """POST /call on the container's socket; raises OSError/HTTPException on transport errors.

        A body goes chunked, as the agent streams the inbound body on (fn-contract.md §2.3; the fdk's
        100 MB Content-Length cap does not apply then); an empty one as `Content-Length: 0`, as Go's
        client sends a body that ends at once.
        """
        now = time.monotonic()
        if self._conn is not None and now - self._conn_used > _RECONNECT_AFTER_S:
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = UnixHTTPConnection(self.socket_path, timeout=timeout_s + 5)
        conn = self._conn
        try:
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s + 5)
            conn.timeout = timeout_s + 5
            conn.putrequest("POST", "/call", skip_accept_encoding=True)
            for key, value in headers:
                conn.putheader(key, value)
            if body:
                conn.putheader("Transfer-Encoding", "chunked")
                view = memoryview(body)
                conn.endheaders((view[i : i + _CHUNK] for i in range(0, len(body), _CHUNK)), encode_chunked=True)
            else:
                conn.putheader("Content-Length", "0")
                conn.endheaders()
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()
            self._conn = None
            raise
        self._conn_used = time.monotonic()
        if resp.will_close:
            conn.close()
            self._conn = None
        return resp.status, resp.getheaders(), data

    def measure(self) -> int:
        """Refresh and return the RSS of the container's process tree."""
        self.rss_bytes = tree_rss_bytes(self.pid) if self.proc.poll() is None else 0
        return self.rss_bytes

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self, reason: str) -> None:
        """Kill the whole process group now; the first reason given is kept."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self._signal_group(signal.SIGKILL)

    def close(self, grace_s: float = 1.0) -> None:
        """Stop the process group (TERM, then KILL), reap it and remove the socket dir."""
        if self.kill_reason is None:
            self.kill_reason = "stopped"
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # also any child left in the group
        self.proc.wait()
        self._pump.join(2.0)
        shutil.rmtree(self.dir, ignore_errors=True)
