"""fnlocal under malformed requests and failures: always an answer, nothing leaked, limits still enforced."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import httpx
import pytest

from fnlocal import FnLocal
from fnlocal.container import Container
from tests.integration.fnlocal_helpers import containers, pid_alive, wait_for

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_fnlocal"]  # fixtures: fl, fnlocal_factory, http


def _raw(fl: FnLocal, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; return status, headers and body of the one response."""
    host, port = fl.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without a response: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers["Content-Length"]):
            body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("framing", [
    b"Content-Length: abc\r\n",
    b"Content-Length: -5\r\n",
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n-3\r\nhello\r\n0\r\n",
])
def test_malformed_body_framing_is_a_400(fl: FnLocal, framing: bytes) -> None:
    path = f"/invoke/{fl.fn_id('demo', 'echo')}".encode()
    head, _, rest = framing.partition(b"\r\n\r\n")
    request = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + head.rstrip(b"\r\n") + b"\r\n\r\n" + rest
    status, headers, body = _raw(fl, request)
    assert status == 400 and json.loads(body) == {"message": "invalid request"}
    assert headers["Connection"] == "close" and "Fn-Call-Id" not in headers  # no call was made
    assert containers(fl, "echo") == []  # nothing was called


def test_unexpected_error_is_a_500(fl: FnLocal, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(fl.runtime, "status", broken)
    status, _, body = _raw(fl, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 500 and json.loads(body) == {"message": "internal error"}
    assert httpx.post(fl.invoke_url("demo", "echo"), timeout=30).status_code == 200  # still serving


def test_container_that_cannot_be_spawned_is_an_init_failure(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(fdk_command=["/nonexistent/python3"])  # Popen raises OSError
    resp = http.post(fl.invoke_url("demo", "echo"))
    assert resp.status_code == 502 and resp.json()["message"].startswith("Container failed to initialize")
    assert list(fl.runtime._root.iterdir()) == []  # its socket dir is gone too


def test_dead_idle_container_is_reaped_and_its_dir_removed(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "echo")
    first = http.post(url, headers={"X-Echo-Raw": "1"})
    pid = int(first.headers["Fn-Local-Container"])
    (container,) = fl.runtime.pools[fl.fn_id("demo", "echo")].snapshot()
    os.kill(pid, signal.SIGKILL)  # dies while idle
    wait_for(lambda: not pid_alive(pid))
    again = http.post(url, headers={"X-Echo-Raw": "1"})
    assert again.status_code == 200 and int(again.headers["Fn-Local-Container"]) != pid
    wait_for(lambda: not container.dir.exists())  # closed (reaped, socket dir removed), by whichever path
    assert container.proc.returncode is not None  # waited for: no zombie


def test_slow_close_of_an_evicted_container_does_not_delay_timeouts(fl: FnLocal, http: httpx.Client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    original = Container.close

    def slow_close(self: Container, grace_s: float = 1.0) -> None:
        if self.fn.name == "echo":
            time.sleep(3)  # e.g. a process that ignores SIGTERM
        original(self, grace_s)

    monkeypatch.setattr(Container, "close", slow_close)
    http.post(fl.invoke_url("demo", "echo"))  # idle_timeout 2: evicted while the call below runs
    started = time.monotonic()
    result: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: result.append(
        http.post(fl.invoke_url("demo", "sleeper"), content=b"30")))  # timeout 2
    worker.start()
    wait_for(lambda: not containers(fl, "echo"), timeout=5)
    worker.join(15)
    assert result and result[0].status_code == 504
    assert time.monotonic() - started < 3.5  # not 2 s + the 3 s close
