"""The Fn agent's wire rules, as pure functions: ids, deadlines, header rewrites, error bodies.

Sources: fn-contract.md §2.3 (request to the container), §2.5 (status mapping), §2.8 (HTTP triggers).
Headers are lists of `(name, value)` pairs so that repeated headers survive.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

Headers = list[tuple[str, str]]

# Go's common.StripHopHeaders; Host and Content-Length are never copied either (Go keeps them out of
# req.Header / recomputes them).
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
HTTP_HEADER_PREFIX = "Fn-Http-H-"
COLD_HEADER = "Fn-Local-Cold"
"""fnlocal's own response header: `true` when the call started a new container."""
CONTAINER_HEADER = "Fn-Local-Container"
"""fnlocal's own response header: pid of the container that served the call."""

MSG_APP_NOT_FOUND = "App not found"
MSG_FN_NOT_FOUND = "Fn not found"  # models.ErrFnsNotFound (not "Function ...")
MSG_TRIGGER_NOT_FOUND = "Trigger not found"
MSG_PATH_NOT_FOUND = "Path not found"
MSG_METHOD_NOT_ALLOWED = "Method not allowed"
MSG_TIMEOUT = "Timed out"
MSG_INTERNAL = "internal error"
MSG_BAD_REQUEST = "invalid request"  # fnlocal: a malformed body framing
MSG_BUSY = "Timed out - server too busy"
MSG_FAILED = "function failed"
MSG_INVALID = "invalid function response"
MSG_RECEIVE = "error receiving function response"
MSG_OOM = "container out of memory, you may want to raise fn.memory for this function (default: 128MB)"
MSG_INIT_FAIL = ("Container failed to initialize, please ensure you are using the latest fdk "
                 "and check the logs")
MSG_INIT_TIMEOUT = ("Container initialization timed out, please ensure you are using the latest fdk "
                    "and check the logs")
BUSY_RETRY_AFTER = "15"
ERROR_CONTENT_TYPE = "application/json; charset=utf-8"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class FnError(Exception):
    """An error the agent answers itself, with Fn's status and `{"message": ...}` body."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: Headers = headers or []

    def body(self) -> bytes:
        """The JSON body Fn's `WriteError` sends."""
        return error_body(self.message)


def error_body(message: str) -> bytes:
    """Return Fn's error body for a message: `{"message":"..."}` and a newline, as Fn's `WriteError`
    writes it with Go's `json.NewEncoder(w).Encode` (real-fn.md: `{"message":"Fn not found"}` + newline)."""
    return json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"


def new_call_id() -> str:
    """Return a ULID-shaped id: 48-bit ms timestamp + 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def deadline_header(timeout_s: float, now: datetime | None = None) -> str:
    """Format `now + timeout` as RFC 3339 with seconds precision, like Go's time.RFC3339."""
    moment = (now or datetime.now(UTC)) + timedelta(seconds=timeout_s)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `fn-http-h-x-custom` -> `Fn-Http-H-X-Custom`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def strip_hop(headers: Iterable[tuple[str, str]]) -> Headers:
    """Drop hop-by-hop headers (and Host/Content-Length) and canonicalise names."""
    return [(canonical(k), v) for k, v in headers if k.lower() not in HOP_HEADERS]


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """Return the last value of a header (case-insensitive), like the fdk's dict of headers."""
    found = None
    for key, value in headers:
        if key.lower() == name.lower():
            found = value
    return found


def call_headers(headers: Iterable[tuple[str, str]], call_id: str, timeout_s: float) -> Headers:
    """The headers of the agent's `POST /call` to a container (fn `createUDSRequest`, §2.3): the inbound
    request's headers without hop-by-hop ones, then the agent's `Fn-Call-Id` and `Fn-Deadline`."""
    out = [(k, v) for k, v in strip_hop(headers) if k not in ("Fn-Call-Id", "Fn-Deadline")]
    return out + [("Fn-Call-Id", call_id), ("Fn-Deadline", deadline_header(timeout_s))]


def trigger_request_headers(headers: Iterable[tuple[str, str]], method: str, url: str) -> Headers:
    """Rewrite a client's request for an HTTP trigger (fn `ServeHTTPTrigger`)."""
    out: Headers = []
    for key, value in strip_hop(headers):
        if key == "Content-Type":
            out.append((key, value))
        else:
            out.append((HTTP_HEADER_PREFIX + key, value))
    out += [("Fn-Http-Method", method.upper()), ("Fn-Http-Request-Url", url), ("Fn-Intent", "httprequest")]
    return out


def trigger_response(status: int, headers: Iterable[tuple[str, str]]) -> tuple[int, Headers]:
    """Rewrite a call's result for the trigger's client (fn `triggerResponseWriter.WriteHeader`)."""
    out: Headers = []
    http_status: str | None = None
    prefix = HTTP_HEADER_PREFIX.lower()
    for key, value in headers:
        low = key.lower()
        if low.startswith(prefix) and len(low) > len(prefix):
            out.append((canonical(key[len(prefix):]), value))
        elif low in ("content-type", "fn-call-id"):
            out.append((canonical(key), value))
        elif low == "fn-http-status":
            http_status = value
        elif low.startswith("fn-local-"):
            out.append((canonical(key), value))  # fnlocal's own diagnostics (documented extra)
    if status >= 400:
        return status, out
    if http_status is not None and http_status.strip().isdigit():
        return int(http_status.strip()), out
    return 200, out


def request_url(scheme: str, host: str, path_and_query: str) -> str:
    """Rebuild the client's URL as Fn's `reqURL()` does: scheme://host/path?query."""
    return f"{scheme}://{host}{path_and_query}"


def map_container_status(status: int) -> FnError | None:
    """Map the fdk's status to the agent's answer; None means pass the response through."""
    if status == 200:
        return None
    if status == 502:
        return FnError(502, MSG_FAILED)
    if status == 504:
        return FnError(504, MSG_TIMEOUT)
    return FnError(502, MSG_INVALID)
