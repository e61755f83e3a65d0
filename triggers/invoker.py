"""Deliver an event body to a function: the one seam between event sources and the Fn server.

Triggers only see the `Invoker` protocol, so the same source works against fnlocal, a real Fn server
(`POST /invoke/<fn_id>`), an HTTP trigger (`/t/<app>/<source>`) or a test double.

`HttpInvoker` retries connection errors and 502/503/504 with exponential backoff (a `Retry-After`
header in seconds wins), then raises `InvokeError`. Any other answer is final and returned as an
`InvokeResult`: a 4xx from an HTTP trigger means the function looked at the event and refused it
(a failure record is its business), which is delivered, not lost.

Detached calls (`Fn-Invoke-Type: detached` on an invoke endpoint, fn-contract.md §2.7) are answered
without the function's answer, in one of two ways: OCI Functions (and fnlocal by default) answer 202
at once and run the function later; a self-hosted Fn server runs the function first and then answers
200 with an empty body (its detached response writer drops the body, and the function's 200
overwrites the 202; real-fn.md, fnlocal's `detached="wait"`). Either answer only says the call was
*submitted*, not how the function fared; a failure on a self-hosted server comes back as for a sync
call (502, retried here). An HTTP trigger ignores the header: its calls are synchronous.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

RETRY_STATUSES: frozenset[int] = frozenset({502, 503, 504})
DETACHED_HEADER = "Fn-Invoke-Type"


@dataclass(frozen=True)
class InvokeResult:
    """The final answer of one invocation."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True for 2xx answers (for detached calls: 202, or 200 with no body; see the module doc)."""
        return 200 <= self.status < 300

    @property
    def call_id(self) -> str:
        return self.headers.get("fn-call-id", "")


class InvokeError(RuntimeError):
    """The function could not be reached, or kept failing transiently until retries ran out."""

    def __init__(self, url: str, attempts: int, reason: str, status: int | None = None) -> None:
        super().__init__(f"invoke {url} failed after {attempts} attempt(s): {reason}")
        self.url = url
        self.attempts = attempts
        self.reason = reason
        self.status = status


class Invoker(Protocol):
    """Something that delivers one request body to a function."""

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        """Send `body`; return the final answer or raise `InvokeError`."""
        ...


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


@dataclass
class HttpInvoker:
    """POST to an Fn invoke endpoint or HTTP trigger URL, with retries.

    One keep-alive connection per thread, so a thread pool can share one instance.
    """

    url: str
    timeout_s: float = 300.0
    max_attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    max_retry_after_s: float = 30.0
    """Cap on a server's `Retry-After` (fnlocal and Fn say 15 s when busy)."""
    retry_statuses: Collection[int] = RETRY_STATUSES
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers, e.g. `Authorization` for a trigger that checks a token."""
    sleep: Callable[[float], None] = time.sleep
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _once(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        return response.status, data, {k.lower(): v for k, v in response.getheaders()}

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        """POST `body`; retry transient failures; return the final answer."""
        headers = {"Content-Type": content_type, **self.headers}
        if detached:
            headers[DETACHED_HEADER] = "detached"
        started = time.monotonic()
        reason = ""
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
            try:
                status, data, answer = self._once(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                reason, status = f"{type(exc).__name__}: {exc}", None
            else:
                if status not in self.retry_statuses:
                    return InvokeResult(status, data, answer, time.monotonic() - started, attempt)
                reason = f"HTTP {status}: {data[:300].decode('utf-8', 'replace')}"
                hinted = _retry_after(answer.get("retry-after"))
                if hinted is not None:
                    delay = min(hinted, self.max_retry_after_s)
            if attempt < self.max_attempts:
                self.sleep(delay)
        raise InvokeError(self.url, self.max_attempts, reason, status)

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop_connection()
