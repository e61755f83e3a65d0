"""URL fetching against real HTTP servers on 127.0.0.1 (no other network is used).

Loopback is refused unless its name is in the allow-list, which the tests use to reach their own
servers; redirects, size caps and timeouts are exercised for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from preprocess_core.errors import (
    FetchTimeoutError,
    ObjectNotFoundError,
    RefusedError,
    TooLargeError,
)
from preprocess_core.fetch_url import UrlFetcher

from tests.data import preprocess_images as gen

pytestmark = pytest.mark.integration

JPEG = gen.encode(gen.chelsea(), "JPEG", quality=85)


class Server:
    """A loopback server with a few routes; records Host headers and hits."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                owner.hosts.append(self.headers.get("Host", ""))
                owner.hits.append(self.path)
                route = self.path.split("?")[0]
                if route == "/cat.jpg":
                    self._send(200, JPEG, "image/jpeg")
                elif route.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", route[len("/redirect/") :].replace("~", "://", 1))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif route == "/loop":
                    self.send_response(301)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif route == "/big":
                    self._send(200, b"\xff\xd8\xff" + b"\x00" * 200_000, "image/jpeg")
                elif route == "/big-chunked":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"\x00" * 16384
                    try:
                        for _ in range(20):
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                elif route == "/slow":
                    time.sleep(3)
                    self._send(200, JPEG, "image/jpeg")
                elif route == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    try:
                        for _ in range(100):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                else:
                    self._send(404, b"nope", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def trusted(**kw: Any) -> UrlFetcher:
    return UrlFetcher(allow_hosts=frozenset({"127.0.0.1", "images.test"}), read_timeout=1.0, **kw)


def test_allow_listed_loopback_is_fetched(server: Server) -> None:
    got = trusted().fetch(server.url("/cat.jpg"), 10_000_000)
    assert got.data == JPEG and got.content_type == "image/jpeg" and got.redirects == 0


def test_without_allow_list_loopback_is_refused_and_never_contacted(server: Server) -> None:
    before = len(server.hits)
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
        with pytest.raises(RefusedError):
            UrlFetcher().fetch(server.url("/cat.jpg", host), 10_000_000)
    assert len(server.hits) == before


def test_connects_to_the_checked_address_with_the_original_host_header(server: Server) -> None:
    # images.test resolves (here) to loopback; it is trusted by name. The connection goes to the
    # address that was checked, and the server sees the URL's host name.
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    got = trusted(resolver=resolver).fetch(server.url("/cat.jpg", "images.test"), 10_000_000)
    assert got.data == JPEG
    assert server.hosts[-1] == f"images.test:{server.port}" and asked == ["images.test"]


def test_redirect_to_a_refused_address_is_not_followed(server: Server) -> None:
    for target in (
        "http~169.254.169.254/latest/meta-data/",
        "http~10.0.0.1/x.jpg",
        f"http~127.0.0.2:{server.port}/cat.jpg",
    ):
        before = len(server.hits)
        with pytest.raises(RefusedError):
            trusted().fetch(server.url(f"/redirect/{target}"), 10_000_000)
        assert server.hits[before:] == [f"/redirect/{target}"]  # only the first hop reached a server


def test_redirect_to_a_refused_scheme(server: Server) -> None:
    with pytest.raises(RefusedError):
        trusted().fetch(server.url("/redirect/file~/etc/passwd"), 10_000_000)


def test_allowed_redirect_is_followed_and_loops_are_cut(server: Server) -> None:
    got = trusted().fetch(server.url(f"/redirect/http~127.0.0.1:{server.port}/cat.jpg"), 10_000_000)
    assert got.data == JPEG and got.redirects == 1 and got.final_url.endswith("/cat.jpg")
    with pytest.raises(RefusedError):
        trusted(max_redirects=3).fetch(server.url("/loop"), 10_000_000)


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_oversized_bodies(server: Server, path: str) -> None:
    with pytest.raises(TooLargeError) as err:
        trusted().fetch(server.url(path), 100_000)
    assert err.value.status == 413


def test_slow_server_times_out(server: Server) -> None:
    with pytest.raises(FetchTimeoutError) as err:
        trusted().fetch(server.url("/slow"), 10_000_000)
    assert err.value.status == 504


def test_trickling_server_hits_the_total_deadline(server: Server) -> None:
    with pytest.raises(FetchTimeoutError):
        trusted(total_timeout=1.0).fetch(server.url("/trickle"), 10_000_000)


def test_not_found(server: Server) -> None:
    with pytest.raises(ObjectNotFoundError) as err:
        trusted().fetch(server.url("/missing.jpg"), 10_000_000)
    assert err.value.code == "url_not_found"


def test_connection_refused_is_a_fetch_error(server: Server) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from preprocess_core.errors import FetchError

    with pytest.raises(FetchError):
        trusted().fetch(f"http://127.0.0.1:{port}/x.jpg", 1000)
