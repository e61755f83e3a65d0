"""Images from URLs without SSRF: checked addresses, pinned connections, re-checked redirects.

For each hop (the first URL and every redirect):
1. only ``http``/``https``, no credentials in the URL;
2. resolve the host; refuse when ANY resolved address is not a public unicast address
   (private, loopback, link-local incl. 169.254.169.254 metadata, multicast, reserved,
   unspecified, CGNAT, documentation, benchmarking, IPv6 ULA/site-local; IPv4 embedded in
   IPv6 — mapped ``::ffff:a.b.c.d``, 6to4, Teredo, NAT64 — is checked as IPv4); hosts listed in
   ``URL_ALLOW_HOSTS`` skip this check (trusted internal servers, tests);
3. connect to the **checked address** itself (no second DNS lookup → no DNS rebinding), sending
   the original ``Host`` header and, for https, the original name as SNI with certificate
   verification against it.
Connect/read timeouts per socket operation plus a total deadline; the body is streamed under a
byte cap (Content-Length checked first).

Why ``http.client`` here and not ``requests`` (which the POST to predict uses, ``fnvision_common.http``):
no transport adapter keeps rule 3 *exactly* on its own. requests picks the connection from the URL, so
pinning means rewriting each URL to the checked address, putting ``Host`` back by hand and giving
urllib3 ``server_hostname``/``assert_hostname`` per (address, name) pool — whose meaning has changed
between urllib3 majors (1.26 → 2.x) — and then also switching off what would bypass the check:
requests' own redirect following (each hop would resolve the new host again), proxies and ``.netrc``
from the environment (a proxy resolves the name itself), and the pool's keep-alive reuse of a
connection to an outside address across fetches. What would be left of requests is none of what it
is for here (no retries: one GET per URL; no pooling: each URL is another host; the redirect loop,
deadline and byte cap stay ours), so the two small pinned ``http.client`` connections below remain
the smaller thing to review, with nothing between the check and the ``connect`` call.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import (
    FetchError,
    FetchTimeoutError,
    RefusedError,
    TooLargeError,
    UnresolvableUrlError,
    UrlNotFoundError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_EXTRA_V4 = (ipaddress.ip_network("100.64.0.0/10"),)  # CGNAT: not "private" in every Python


def forbidden_reason(address: str | IPAddress) -> str | None:
    """Why an address must not be fetched from, or None if it is public unicast."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"embedded IPv4 {embedded}: {inner}" if inner else None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata lives here)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("shared address space", any(ip in net for net in _EXTRA_V4 if ip.version == 4)),
        ("not globally routable", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of ``host`` (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class FetchedUrl:
    """Body and facts of a downloaded URL."""

    data: bytes
    url: str
    final_url: str
    content_type: str | None
    redirects: int


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a fixed IP; ``Host`` stays the name from the URL."""

    def __init__(self, host: str, port: int, ip: str, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._ip = ip
        self._read_timeout = read_timeout

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock.settimeout(self._read_timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP; SNI and certificate check use the name from the URL."""

    def __init__(
        self,
        host: str,
        port: int,
        ip: str,
        connect_timeout: float,
        read_timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=context)
        self._ip = ip
        self._read_timeout = read_timeout
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        self.sock.settimeout(self._read_timeout)


class UrlFetcher:
    """Download images from the web under the rules in the module docstring."""

    def __init__(
        self,
        *,
        allow_hosts: frozenset[str] = frozenset(),
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        total_timeout: float = 30.0,
        max_redirects: int = 3,
        resolver: Resolver = system_resolver,
        tls_context: ssl.SSLContext | None = None,
        user_agent: str = "fn-vision-preprocess/1",
    ) -> None:
        self.allow_hosts = allow_hosts
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_redirects = max_redirects
        self.resolver = resolver
        self.tls_context = tls_context or ssl.create_default_context()
        self.user_agent = user_agent

    def fetch(self, url: str, max_bytes: int) -> FetchedUrl:
        """GET ``url`` (following checked redirects) and return at most ``max_bytes`` bytes."""
        deadline = time.monotonic() + self.total_timeout
        current = url
        for hop in range(self.max_redirects + 1):
            target = _parse(current)
            ip = self.checked_address(target.host, target.port)
            status, headers, data = self._get(target, ip, max_bytes, deadline)
            if status in _REDIRECTS:
                location = headers.get("location")
                if not location:
                    raise FetchError(f"{current} answered {status} without a Location")
                current = urljoin(current, location)
                continue
            if status in (404, 410):
                raise UrlNotFoundError(f"{current} answered {status}")
            if not 200 <= status < 300:
                raise FetchError(f"{current} answered HTTP {status}")
            return FetchedUrl(data, url, current, headers.get("content-type"), hop)
        raise RefusedError(f"{url}: more than {self.max_redirects} redirects (URL_MAX_REDIRECTS)")

    def checked_address(self, host: str, port: int) -> str:
        """Resolve ``host`` and return the address to connect to, or refuse."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UnresolvableUrlError(f"cannot resolve {host!r}: {exc}") from exc
            if not addresses:
                raise UnresolvableUrlError(f"{host!r} has no addresses")
        if host.lower() in self.allow_hosts:
            return addresses[0]
        for address in addresses:
            reason = forbidden_reason(address)
            if reason:
                raise RefusedError(f"{host!r} resolves to {address}, which is {reason}")
        return addresses[0]

    def _get(self, target: _Target, ip: str, max_bytes: int, deadline: float) -> tuple[int, dict[str, str], bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchTimeoutError(f"downloading {target.host} took over {self.total_timeout}s")
        connect_timeout = min(self.connect_timeout, remaining)
        read_timeout = min(self.read_timeout, remaining)
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = _PinnedHTTPSConnection(target.host, target.port, ip, connect_timeout, read_timeout, self.tls_context)
        else:
            conn = _PinnedHTTPConnection(target.host, target.port, ip, connect_timeout, read_timeout)
        try:
            conn.request(
                "GET",
                target.path,
                headers={"User-Agent": self.user_agent, "Accept": "image/*", "Accept-Encoding": "identity"},
            )
            response = conn.getresponse()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.status in _REDIRECTS or not 200 <= response.status < 300:
                return response.status, headers, b""
            return response.status, headers, self._read_body(response, target, max_bytes, deadline)
        except TimeoutError as exc:
            raise FetchTimeoutError(f"{target.host}: timed out ({exc or 'no data'})") from exc
        except (http.client.InvalidURL, UnicodeError, ValueError) as exc:
            raise RefusedError(f"invalid URL for {target.host}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{target.host}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()

    def _read_body(self, response: Any, target: _Target, max_bytes: int, deadline: float) -> bytes:
        length = response.getheader("content-length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise TooLargeError(f"{target.host}: Content-Length {length} is over the cap of {max_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() > deadline:
                raise FetchTimeoutError(f"{target.host}: download took over {self.total_timeout}s")
            chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(f"{target.host}: body is over the cap of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedError(f"invalid URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedError(f"only http and https URLs are fetched, not {scheme or 'no scheme'!r}")
    if parts.username is not None or parts.password is not None:
        raise RefusedError("URLs with credentials are refused")
    host = (parts.hostname or "").lower()
    if not host:
        raise RefusedError(f"URL without a host: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, host, port or (443 if scheme == "https" else 80), path)
