"""fnvision_common.http.RetryingPost against a real loopback HTTP server that answers from a script."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fnvision_common.http import PostFailed, PostTimeout, RetryingPost

from tests.scripted_http import ScriptedServer, scripted_server


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server("/invoke/fn?x=1", stall_s=0.6) as s:
        yield s


def _post(url: str, sleeps: list[float], **kw: Any) -> RetryingPost:
    settings: dict[str, Any] = {"timeout": 5.0, "attempts": 4, "backoff": 0.1, "sleep": sleeps.append, **kw}
    return RetryingPost(url, **settings)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_posts_body_and_headers_and_returns_the_answer(server: ScriptedServer) -> None:
    server.script = [(201, {"Fn-Call-Id": "c-1"}, b'{"ok":true}')]
    reply = _post(server.url, []).post(b"\x00body", {"Content-Type": "application/octet-stream", "X-A": "1"})
    assert (reply.status, reply.body, reply.attempts) == (201, b'{"ok":true}', 1)
    assert reply.headers["fn-call-id"] == "c-1" and reply.elapsed_s > 0
    (req,) = server.seen
    assert req["path"] == "/invoke/fn?x=1" and req["body"] == b"\x00body"
    assert req["headers"]["Content-Type"] == "application/octet-stream" and req["headers"]["X-A"] == "1"
    assert req["headers"]["Accept-Encoding"] == "identity" and "Cookie" not in req["headers"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_retries_transient_statuses_with_exponential_backoff(server: ScriptedServer, status: int) -> None:
    server.script = [(status, {}, b"busy")] * 3 + [(200, {}, b"done")]
    sleeps: list[float] = []
    reply = _post(server.url, sleeps).post(b"{}", {})
    assert reply.body == b"done" and reply.attempts == 4 and len(server.seen) == 4
    assert sleeps == [0.1, 0.2, 0.4]
    assert {r["body"] for r in server.seen} == {b"{}"}  # the body goes again with every retry


def test_backoff_is_capped(server: ScriptedServer) -> None:
    server.script = [(503, {}, b"")] * 5
    sleeps: list[float] = []
    with pytest.raises(PostFailed):
        _post(server.url, sleeps, attempts=5, max_backoff=0.25).post(b"", {})
    assert sleeps == [0.1, 0.2, 0.25, 0.25]


def test_429_with_retry_after_is_retried_after_the_hinted_delay(server: ScriptedServer) -> None:
    date = email.utils.formatdate(time.time() + 3, usegmt=True)
    server.script = [
        (429, {"Retry-After": "2"}, b""),
        (503, {"Retry-After": "999"}, b""),  # capped
        (503, {"Retry-After": date}, b""),  # an HTTP date
        (503, {"Retry-After": "soon"}, b""),  # unreadable: the backoff
        (200, {}, b"ok"),
    ]
    sleeps: list[float] = []
    post = _post(server.url, sleeps, attempts=5, max_retry_after=30, retry_statuses={429, 502, 503, 504})
    assert post.post(b"", {}).attempts == 5
    assert sleeps[:2] == [2.0, 30.0] and 1.0 < sleeps[2] <= 3.0 and sleeps[3] == 0.8


def test_gives_up_after_n_attempts_with_the_last_answer(server: ScriptedServer) -> None:
    server.script = [(502, {}, b'{"message":"function failed"}')] * 3
    with pytest.raises(PostFailed) as info:
        _post(server.url, [], attempts=3).post(b"", {})
    err = info.value
    assert err.attempts == 3 and len(server.seen) == 3 and err.reply is not None and err.reply.status == 502
    assert err.reason == 'HTTP 502: {"message":"function failed"}' and server.url in str(err)


def test_connection_refused_is_retried_then_given_up() -> None:
    sleeps: list[float] = []
    with pytest.raises(PostFailed) as info:
        _post(f"http://127.0.0.1:{_closed_port()}/x", sleeps, attempts=3).post(b"", {})
    err = info.value
    assert not isinstance(err, PostTimeout) and err.reply is None and err.attempts == 3
    assert isinstance(err.error, ConnectionRefusedError) and err.reason.startswith("ConnectionRefusedError: ")
    assert sleeps == [0.1, 0.2]


def test_a_connection_closed_without_an_answer_is_retried(server: ScriptedServer) -> None:
    server.script = [ConnectionResetError(), ConnectionResetError(), (200, {}, b"ok")]
    reply = _post(server.url, []).post(b"x", {})
    assert reply.body == b"ok" and reply.attempts == 3 and server.connections == 3


@pytest.mark.parametrize(
    ("answer", "real"),
    [((200, {"Fn-Http-Status": "503"}, b""), 503), ((200, {"Fn-Http-Status": "429"}, b""), 429)],
)
def test_retryable_fn_http_status_on_a_2xx_is_retried(server: ScriptedServer, answer: Any, real: int) -> None:
    server.script = [answer, (200, {"Fn-Http-Status": "200"}, b"ok")]
    sleeps: list[float] = []
    post = _post(server.url, sleeps, fn_http_status=True, retry_statuses={429, 502, 503, 504})
    reply = post.post(b"", {})
    assert reply.body == b"ok" and reply.attempts == 2 and sleeps == [0.1]
    server.script = [answer] * 4
    with pytest.raises(PostFailed) as info:
        post.post(b"", {})
    assert info.value.reply is not None and info.value.reply.real_status == real
    assert info.value.reason.startswith(f"HTTP {real}: ")


def test_fn_http_status_is_only_read_when_asked(server: ScriptedServer) -> None:
    server.script = [(200, {"Fn-Http-Status": "503"}, b"wire 200")]
    reply = _post(server.url, []).post(b"", {})
    assert reply.status == 200 and reply.real_status == 503 and reply.attempts == 1


@pytest.mark.parametrize(
    "answer",
    [
        (400, {}, b"bad"),
        (404, {}, b""),
        (413, {"Retry-After": "1"}, b""),  # urllib3 alone retries 413/429/503 with a Retry-After
        (429, {"Retry-After": "1"}, b""),  # not in the default retry statuses
        (500, {}, b"internal"),
        (200, {"Fn-Http-Status": "400"}, b"client error, gateway form"),
        (302, {"Location": "http://127.0.0.1:1/elsewhere"}, b""),  # redirects are answers, never followed
    ],
)
def test_other_answers_are_final(server: ScriptedServer, answer: Any) -> None:
    server.script = [answer]
    sleeps: list[float] = []
    reply = _post(server.url, sleeps, fn_http_status=True).post(b"", {})
    assert reply.status == answer[0] and reply.body == answer[2] and reply.attempts == 1
    assert len(server.seen) == 1 and sleeps == []


def test_timeouts_are_not_retried_unless_asked(server: ScriptedServer) -> None:
    server.script = [TimeoutError()]
    with pytest.raises(PostTimeout) as info:
        _post(server.url, [], timeout=0.2, retry_timeouts=False).post(b"", {})
    assert info.value.attempts == 1 and len(server.seen) == 1 and isinstance(info.value.error, TimeoutError)
    server.script = [TimeoutError(), (200, {}, b"ok")]
    assert _post(server.url, [], timeout=0.2).post(b"", {}).attempts == 2


def test_one_connection_is_reused(server: ScriptedServer) -> None:
    post = _post(server.url, [])
    for _ in range(5):
        post.post(b"x", {})
    server.script = [(503, {}, b""), (200, {}, b"")]
    post.post(b"x", {})
    assert len(server.seen) == 7 and server.connections == 1


def test_threads_share_the_pool(server: ScriptedServer) -> None:
    post = _post(server.url, [])
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: post.post(b"x", {}), range(40)))
    assert all(r.status == 200 for r in replies) and len(server.seen) == 40
    assert server.connections <= 4


def test_cookies_and_environment_proxies_are_ignored(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    server.script = [(200, {"Set-Cookie": "session=1; Path=/"}, b""), (200, {}, b"")]
    post = _post(server.url, [], attempts=1)
    post.post(b"", {})
    post.post(b"", {})
    assert "Cookie" not in server.seen[1]["headers"]


@pytest.mark.parametrize("url", ["unix:/tmp/x.sock", "ftp://host/x", "http:///nohost"])
def test_rejects_urls_that_are_not_http(url: str) -> None:
    with pytest.raises(ValueError):
        RetryingPost(url, timeout=1, attempts=1, backoff=0)


def test_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        RetryingPost("http://127.0.0.1/", timeout=1, attempts=0, backoff=0)
