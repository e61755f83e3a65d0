"""One retrying HTTP POST: how preprocess calls predict, and how the triggers call preprocess.

Part of ``fnvision-common`` (common/README.md). A ``requests.Session`` with one ``HTTPAdapter`` whose
urllib3 ``Retry`` (``FnRetry``) does all the retrying. The adapter keeps connections alive in a pool:
a hot preprocess container reuses one connection to predict instead of opening one per call, and a
trigger's thread pool shares one pool (a connection per call in flight).

Retried, up to ``attempts`` requests in all:

* connection errors before an answer arrived (refused, reset, closed without answering, TLS):
  ``POST`` is in ``allowed_methods`` (the functions are idempotent: results are conditional puts);
* answers whose status is in ``retry_statuses`` and, with ``fn_http_status=True``, 2xx answers
  whose ``Fn-Http-Status`` is (the fdk's gateway form, ``fnstatus.real_status``);
* timeouts only with ``retry_timeouts=True`` (the triggers). Without it (preprocess) a timeout is
  ``PostTimeout`` at once: a predict that used the whole timeout once would use it again.

The delay before retry k (1, 2, ...) is the answer's ``Retry-After`` (seconds or an HTTP date,
capped at ``max_retry_after``), else ``backoff * 2**(k-1)`` capped at ``max_backoff``.

Outcomes: a ``Reply`` for every answer that is not retried (2xx, 3xx: redirects are not followed,
4xx, the other 5xx); ``PostFailed`` when the attempts ran out (``reply``: the last answer, or
``error``: the last connection error), ``PostTimeout`` (a ``PostFailed``) for a timeout that is not
retried. An error while reading a body whose status line had already arrived ends the call as
``PostFailed`` too: requests reads the body after urllib3's retries have returned (rare: the
server died in the middle of its answer). Nothing is taken from the environment (proxies,
``.netrc``) and no cookies are kept: the targets are Fn endpoints named in configuration.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from fnvision_common.fnstatus import real_status

log = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({502, 503, 504})
"""What an Fn server or a function says when a later try may work (busy, failed, timed out)."""


@dataclass(frozen=True)
class Reply:
    """A final answer."""

    status: int
    """The wire status."""
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def real_status(self) -> int:
        """`Fn-Http-Status` on a 2xx, else the wire status (``fnstatus.real_status``)."""
        return real_status(self.status, self.headers)


class PostFailed(Exception):
    """The attempts ran out: `reply` is the last (retryable) answer, or `error` the last failure."""

    def __init__(
        self, url: str, attempts: int, *, reply: Reply | None = None, error: BaseException | None = None
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.reply = reply
        self.error = root_cause(error) if error is not None else None
        super().__init__(f"POST {url} failed after {attempts} attempt(s): {self.reason}")

    @property
    def reason(self) -> str:
        """``HTTP <real status>: <start of the body>``, or ``<ErrorType>: <text>``."""
        if self.reply is not None:
            return f"HTTP {self.reply.real_status}: {self.reply.body[:300].decode('utf-8', 'replace')}"
        return f"{type(self.error).__name__}: {self.error}"


class PostTimeout(PostFailed):
    """The target did not answer within the timeout."""


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it wraps, outermost first (requests → urllib3 → the socket's error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, MaxRetryError):
            current = current.reason
        elif isinstance(current, (ProtocolError, requests.RequestException)) and any(
            isinstance(arg, BaseException) for arg in current.args
        ):
            current = next(arg for arg in current.args if isinstance(arg, BaseException))
        else:
            current = current.__cause__


def root_cause(error: BaseException) -> BaseException:
    """The innermost error of `error`, e.g. ``ConnectionRefusedError`` under requests' wrappers."""
    *_, last = causes(error)
    return last


def is_timeout(error: BaseException) -> bool:
    """A connect or read timeout (a refused connection is not one, although urllib3 derives it so)."""
    return any(
        isinstance(e, (ReadTimeoutError, TimeoutError, requests.Timeout))
        or (isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError))
        for e in causes(error)
    )


class FnRetry(Retry):
    """urllib3's `Retry` with the rules of the module docstring (immutable like its base).

    urllib3 shows `is_retry` only the wire status, so with `fn_http_status` every 2xx goes on to
    `increment`, which sees the whole answer: one whose `Fn-Http-Status` is not retryable ends the
    loop there with `MaxRetryError`, which urlopen turns into "return this answer" because
    `raise_on_status` is False. Sleeps go through `sleeper` (tests record them).
    """

    def __init__(
        self,
        *args: Any,
        sleeper: Callable[[float], None] = time.sleep,
        fn_http_status: bool = False,
        retry_timeouts: bool = True,
        max_retry_after: float = 30.0,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.sleeper = sleeper
        self.fn_http_status = fn_http_status
        self.retry_timeouts = retry_timeouts
        self.max_retry_after = max_retry_after

    def new(self, **kw: Any) -> Self:
        kw.setdefault("sleeper", self.sleeper)
        kw.setdefault("fn_http_status", self.fn_http_status)
        kw.setdefault("retry_timeouts", self.retry_timeouts)
        kw.setdefault("max_retry_after", self.max_retry_after)
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if not self._is_method_retryable(method):
            return False
        return status_code in self.status_forcelist or (self.fn_http_status and status_code < 300)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if error is not None and not self.retry_timeouts and is_timeout(error):
            raise error.with_traceback(_stacktrace)
        if error is None and response is not None:
            status = real_status(response.status, response.headers) if self.fn_http_status else response.status
            if status not in self.status_forcelist:
                raise MaxRetryError(_pool, url or "", ResponseError("final answer"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        failures = len(self.history)  # redirects are never followed here
        return min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)) if failures else 0.0

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """`Retry-After` in seconds (a number or an HTTP date), capped; None when absent or unreadable."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                return None
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isnan(seconds):
            return None
        return min(max(0.0, seconds), self.max_retry_after)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        hinted = self.get_retry_after(response) if response is not None else None
        delay = hinted if hinted is not None else self.get_backoff_time()
        if response is not None:
            why = f"HTTP {real_status(response.status, response.headers) if self.fn_http_status else response.status}"
        else:
            why = repr(self.history[-1].error) if self.history else ""
        log.warning("POST failed, retrying", extra={"attempt": len(self.history), "why": why, "delay": delay})
        self.sleeper(delay)


class RetryingPost:
    """POST bytes to one URL with the retries of the module docstring; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        attempts: int,
        backoff: float,
        max_backoff: float = math.inf,
        max_retry_after: float = 30.0,
        retry_statuses: Collection[int] = RETRY_STATUSES,
        fn_http_status: bool = False,
        retry_timeouts: bool = True,
        pool_size: int = 32,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.retry_statuses = frozenset(retry_statuses)
        self.fn_http_status = fn_http_status
        self._sleep = sleep
        self._local = threading.local()
        self.retry = FnRetry(
            total=attempts - 1,
            allowed_methods=frozenset({"POST"}),
            status_forcelist=self.retry_statuses,
            backoff_factor=backoff,
            backoff_max=max_backoff,
            raise_on_status=False,
            sleeper=self._counted_sleep,
            fn_http_status=fn_http_status,
            retry_timeouts=retry_timeouts,
            max_retry_after=max_retry_after,
        )
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._session.headers["Accept-Encoding"] = "identity"
        adapter = HTTPAdapter(max_retries=self.retry, pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def _counted_sleep(self, delay: float) -> None:
        self._local.retries += 1  # urllib3 retries in the calling thread: one sleep per retry
        self._sleep(delay)

    def post(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Send `body`; the final answer, or `PostFailed` / `PostTimeout`."""
        self._local.retries = 0
        started = time.monotonic()
        try:
            response = self._session.post(
                self.url, data=body, headers=dict(headers), timeout=self.timeout, allow_redirects=False
            )
            reply = Reply(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.content,
                self._local.retries + 1,
                time.monotonic() - started,
            )
        except (requests.RequestException, HTTPError) as exc:  # urllib3's own: a timeout FnRetry raised as is
            failed = PostTimeout if is_timeout(exc) else PostFailed
            raise failed(self.url, self._local.retries + 1, error=exc) from exc
        if (reply.real_status if self.fn_http_status else reply.status) in self.retry_statuses:
            raise PostFailed(self.url, reply.attempts, reply=reply)
        return reply

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
