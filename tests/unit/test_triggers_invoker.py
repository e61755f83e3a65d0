"""HttpInvoker against a real loopback HTTP server that answers from a script."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scripted_http import ScriptedServer, scripted_server
from triggers.invoker import HttpInvoker, InvokeError


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server("/invoke/01ABC?x=1") as s:
        yield s


def _invoker(url: str, sleeps: list[float], **kw: Any) -> HttpInvoker:
    return HttpInvoker(url, sleep=sleeps.append, backoff_s=0.1, max_backoff_s=0.4, **kw)


def test_posts_body_and_headers(server: ScriptedServer) -> None:
    server.script = [(200, {"Fn-Call-Id": "call-1"}, b'{"ok":true}')]
    inv = _invoker(server.url, [], headers={"Authorization": "Bearer t"})
    result = inv.invoke(b'{"a":1}', "application/json")
    assert result.ok and result.status == 200 and result.body == b'{"ok":true}'
    assert result.call_id == "call-1" and result.attempts == 1
    req = server.seen[0]
    assert req["path"] == "/invoke/01ABC?x=1" and req["body"] == b'{"a":1}'
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Authorization"] == "Bearer t"
    assert "Fn-Invoke-Type" not in req["headers"]


@pytest.mark.parametrize("ack", [202, 200])  # OCI / fnlocal: 202 at once; self-hosted Fn: 200, no body
def test_detached_sends_header_and_accepts_the_acknowledgement(server: ScriptedServer, ack: int) -> None:
    server.script = [(ack, {}, b"")]
    result = _invoker(server.url, []).invoke(b"{}", "application/json", detached=True)
    assert result.status == ack and result.ok and result.body == b"" and result.attempts == 1
    assert server.seen[0]["headers"]["Fn-Invoke-Type"] == "detached"


def test_retries_transient_statuses_with_backoff_then_succeeds(server: ScriptedServer) -> None:
    server.script = [(503, {}, b"busy"), (502, {}, b"x"), (504, {}, b"y"), (200, {}, b"done")]
    sleeps: list[float] = []
    result = _invoker(server.url, sleeps).invoke(b"{}", "application/json")
    assert result.body == b"done" and result.attempts == 4
    assert sleeps == [0.1, 0.2, 0.4]
    assert len(server.seen) == 4


def test_retry_after_is_honoured_and_capped(server: ScriptedServer) -> None:
    server.script = [(503, {"Retry-After": "2"}, b""), (503, {"Retry-After": "999"}, b""), (200, {}, b"")]
    sleeps: list[float] = []
    _invoker(server.url, sleeps, max_retry_after_s=30).invoke(b"{}", "application/json")
    assert sleeps == [2.0, 30.0]


def test_gives_up_with_a_clear_error(server: ScriptedServer) -> None:
    server.script = [(503, {}, b'{"message":"Timed out - server too busy"}')] * 3
    with pytest.raises(InvokeError) as info:
        _invoker(server.url, [], max_attempts=3).invoke(b"{}", "application/json")
    err = info.value
    assert err.status == 503 and err.attempts == 3
    assert "server too busy" in str(err) and server.url in str(err)


def test_final_client_errors_are_returned_not_retried(server: ScriptedServer) -> None:
    server.script = [(415, {}, b'{"error":{"code":"unsupported_image"}}')]
    result = _invoker(server.url, []).invoke(b"{}", "application/json")
    assert result.status == 415 and not result.ok and len(server.seen) == 1


def test_connection_refused_is_retried_then_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(InvokeError) as info:
        _invoker(f"http://127.0.0.1:{port}/invoke/x", sleeps, max_attempts=3).invoke(b"{}", "text/plain")
    assert info.value.status is None and "ConnectionRefusedError" in info.value.reason
    assert len(sleeps) == 2


def test_connection_is_reused_across_calls(server: ScriptedServer) -> None:
    inv = _invoker(server.url, [])
    for _ in range(3):
        inv.invoke(b"{}", "application/json")
    ports = {r["headers"].get("Host") for r in server.seen}
    assert len(server.seen) == 3 and len(ports) == 1
    assert server.connections == 1


def test_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError):
        HttpInvoker("unix:/tmp/x.sock")
