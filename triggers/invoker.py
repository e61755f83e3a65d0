"""Deliver an event body to a function: the one seam between event sources and the Fn server.

Triggers only see the `Invoker` protocol, so the same source works against fnlocal, a real Fn server
(`POST /invoke/<fn_id>`), an HTTP trigger (`/t/<app>/<source>`) or a test double.

`HttpInvoker` is `fnvision_common.http.RetryingPost` (a pool of keep-alive connections shared by the
threads of a source): it retries connection errors, timeouts and 502/503/504 with exponential
backoff (a `Retry-After` header wins, up to `max_retry_after_s`), then raises `InvokeError`. Any
other answer is final and returned as an `InvokeResult`: a 4xx from an HTTP trigger means the
function looked at the event and refused it (a failure record is its business), which is
delivered, not lost.

Detached calls (`Fn-Invoke-Type: detached` on an invoke endpoint; fnproject/fn `runner_fninvoke.go`) are answered
without the function's answer, in one of two ways: OCI Functions (and fnlocal by default) answer 202
at once and run the function later; a self-hosted Fn server runs the function first and then answers
200 with an empty body (its detached response writer drops the body, and the function's 200
overwrites the 202; observed on fnserver 0.3.753, fnlocal's `detached="wait"`). Either answer only says the call was
*submitted*, not how the function fared; a failure on a self-hosted server comes back as for a sync
call (502, retried here). An HTTP trigger ignores the header: its calls are synchronous.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fnvision_common.http import RETRY_STATUSES, PostFailed, RetryingPost

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


@dataclass
class HttpInvoker:
    """POST to an Fn invoke endpoint or HTTP trigger URL, with retries; one instance serves a thread pool."""

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
    _post: RetryingPost = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._post = RetryingPost(  # ValueError for a URL that is not http(s)
            self.url,
            timeout=self.timeout_s,
            attempts=self.max_attempts,
            backoff=self.backoff_s,
            max_backoff=self.max_backoff_s,
            max_retry_after=self.max_retry_after_s,
            retry_statuses=self.retry_statuses,
            sleep=self.sleep,
        )

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        """POST `body`; retry transient failures; return the final answer."""
        headers = {"Content-Type": content_type, **self.headers}
        if detached:
            headers[DETACHED_HEADER] = "detached"
        try:
            reply = self._post.post(body, headers)
        except PostFailed as exc:
            raise InvokeError(self.url, exc.attempts, exc.reason, exc.reply.status if exc.reply else None) from exc
        return InvokeResult(reply.status, reply.body, reply.headers, reply.elapsed_s, reply.attempts)

    def close(self) -> None:
        """Close the pooled connections."""
        self._post.close()
