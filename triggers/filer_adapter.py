"""SeaweedFS filer webhook receiver → OCI-style `createobject` CloudEvents → preprocess.

How a filer event reads is `fnvision_common.filer_events`, which events count is
`triggers.filer_events`; this module is the HTTP side: it answers the filer (400 for a body that is
not a filer event), forwards one CloudEvent per completed object version through an `Invoker`, and
never drops one it could not deliver.

Delivery is synchronous: the webhook answers after preprocess answered (any final status: a
refusal is preprocess's to record). The filer does **not** redeliver an event its webhook answered
with an error (observed: a 503 goes straight to its dead-letter log), so everything that cannot be
delivered now is queued here and retried in the background with backoff for up to `retry_for_s`:

* preprocess unreachable (the invoker gave up): answered 202, queued;
* no ETag in the event (a filer that does not set one) and no S3 `client` to HEAD the object, or the
  HEAD failed: answered 503 (so the filer's dead-letter log shows it too), logged as an error and
  queued; the retry HEADs the object once a client is there. An object that is gone (404) is ignored.

Set the filer's `timeout_seconds` above the function's cold start. Retries live in memory: run the
bucket watcher beside the adapter as the reconciler for anything lost in a crash or given up on, and
give the adapter `on_delivered=watcher.mark_delivered` so the watcher does not resend what the
adapter delivered. Redeliveries of a version already forwarded (or queued) are answered without a
second invoke.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fnvision_common.filer_events import FilerEventError
from fnvision_common.objects import ObjectRef
from fnvision_common.s3client import is_not_found, normalise_etag

from triggers import loopback
from triggers.events import DEFAULT_NAMESPACE, JSON, oci_object_event, to_body
from triggers.filer_events import FilerChange, notification_toml, parse_filer_event, write_notification_toml
from triggers.inflight import InFlight
from triggers.invoker import InvokeError, Invoker

log = logging.getLogger(__name__)


@dataclass
class AdapterStats:
    received: int = 0
    ignored: int = 0
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    """Delivery attempts that did not reach preprocess (each retry counts)."""
    unresolved: int = 0
    """Events whose ETag could not be found out (no client, or the HEAD failed) when they arrived."""
    given_up: int = 0


@dataclass
class _Pending:
    """An object version waiting for another attempt (monotonic times)."""

    change: FilerChange
    claimed: bool
    first: float
    backoff: float
    due: float


_SENT, _DUPLICATE, _GONE, _UNRESOLVED, _UNDELIVERED = "sent", "duplicate", "gone", "unresolved", "undelivered"


@dataclass
class FilerAdapter:
    """Webhook receiver for the filer; forwards completed objects to preprocess as CloudEvents."""

    invoker: Invoker
    client: Any = None
    """boto3 client, only used to HEAD an object whose event carries no ETag."""
    buckets: Collection[str] | None = None
    results_bucket: str = "results"
    results_prefix: str = ""
    namespace: str = DEFAULT_NAMESPACE
    bearer_token: str = ""
    """When set, requests must carry `Authorization: Bearer <token>` (notification.toml bearer_token)."""
    port: int = 0
    dedupe_size: int = 10_000
    retry_backoff_s: float = 1.0
    retry_for_s: float = 600.0
    """Keep retrying an undelivered object this long, then log it and give up (the watcher reconciles)."""
    on_delivered: Callable[[list[ObjectRef]], None] | None = None
    """Called with each delivered object (e.g. `Watcher.mark_delivered`)."""
    in_flight: InFlight | None = None
    """Shared with the watcher: an object version is delivered by one source at a time. The adapter
    holds its claim from the first attempt to the end of its retries."""
    stats: AdapterStats = field(default_factory=AdapterStats)
    _seen: OrderedDict[tuple[str, str, str], None] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _retries: list[_Pending] = field(default_factory=list, init=False, repr=False)
    _wake: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)
    _in_retry: int = field(default=0, init=False, repr=False)

    @property
    def url(self) -> str:
        """The webhook endpoint to put in notification.toml."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/filer"

    def notification_toml(self, **kwargs: Any) -> str:
        """notification.toml for this adapter (only the watched buckets, if any)."""
        return notification_toml(self.url, **self._toml_defaults(kwargs))

    def _toml_defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        prefixes = [f"/buckets/{b}/" for b in sorted(self.buckets)] if self.buckets else ["/buckets/"]
        return {"path_prefixes": prefixes, "bearer_token": self.bearer_token, **kwargs}

    def write_config(self, workdir: Path, **kwargs: Any) -> Path:
        """Write notification.toml into weed's working directory."""
        return write_notification_toml(workdir, self.url, **self._toml_defaults(kwargs))

    def authorized(self, header: str | None) -> bool:
        """True if no token is configured or `header` is exactly `Bearer <token>` (constant time)."""
        if not self.bearer_token:
            return True
        return hmac.compare_digest((header or "").encode(), f"Bearer {self.bearer_token}".encode())

    def _claim(self, ref: ObjectRef) -> bool:
        """Reserve a version for sending; False if it was already forwarded or is in flight."""
        ident = (ref.bucket, ref.key, ref.etag)
        with self._lock:
            if ident in self._seen:
                self._seen.move_to_end(ident)
                return False
            self._seen[ident] = None
            while len(self._seen) > self.dedupe_size:
                self._seen.popitem(last=False)
            return True

    def _release(self, ref: ObjectRef) -> None:
        with self._lock:
            self._seen.pop((ref.bucket, ref.key, ref.etag), None)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _resolve(self, change: FilerChange) -> FilerChange | str:
        """Fill in the ETag with a HEAD if the event had none; `_GONE` / `_UNRESOLVED` if impossible."""
        ref = change.ref
        if ref.etag:
            return change
        if self.client is None:
            log.error("filer adapter: event for %s/%s has no ETag and the adapter has no S3 client to "
                      "HEAD it (set FilerAdapter.client); kept for retry", ref.bucket, ref.key)
            return _UNRESOLVED
        try:
            head = self.client.head_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as exc:
            if is_not_found(exc):
                return _GONE
            log.error("filer adapter: HEAD %s/%s failed, kept for retry: %s", ref.bucket, ref.key, exc)
            return _UNRESOLVED
        return FilerChange(change.event_type, dataclasses.replace(ref, etag=normalise_etag(head["ETag"])))

    def _attempt(self, pending: _Pending) -> str:
        """One try at resolving, claiming and delivering; updates `pending` in place."""
        resolved = self._resolve(pending.change)
        if isinstance(resolved, str):
            return resolved
        pending.change = resolved
        if not pending.claimed:
            if not self._claim(resolved.ref):
                self._count("duplicates")
                return _DUPLICATE
            if self.in_flight is not None and not self.in_flight.claim(resolved.ref):
                # The watcher is sending it now; if that fails, its next poll sends it again.
                self._count("duplicates")
                return _DUPLICATE
            pending.claimed = True
        return _SENT if self._deliver(resolved) else _UNDELIVERED

    def handle(self, payload: Mapping[str, Any]) -> tuple[int, str]:
        """Process one filer event; returns (HTTP status for the filer, what happened)."""
        self._count("received")
        try:
            change = parse_filer_event(payload, buckets=self.buckets, results_bucket=self.results_bucket,
                                       results_prefix=self.results_prefix)
        except FilerEventError as exc:
            self._count("ignored")
            return 400, f"malformed event: {exc}"
        if isinstance(change, str):
            self._count("ignored")
            return 200, f"ignored: {change}"
        now = time.monotonic()
        pending = _Pending(change, claimed=False, first=now, backoff=self.retry_backoff_s, due=now)
        outcome = self._attempt(pending)
        if outcome == _SENT:
            return 200, "sent"
        if outcome == _DUPLICATE:
            return 200, "duplicate"
        if outcome == _GONE:
            self._count("ignored")
            return 200, "ignored: object no longer exists"
        self._schedule(pending)
        if outcome == _UNRESOLVED:
            self._count("unresolved")
            return 503, "ETag unknown (no S3 client or HEAD failed): queued for retry"
        return 202, "preprocess unreachable: queued for retry"

    def _deliver(self, change: FilerChange) -> bool:
        """Invoke preprocess once (the invoker retries transient errors itself)."""
        ref = change.ref
        body = to_body(oci_object_event(ref, event_type=change.event_type, namespace=self.namespace))
        try:
            result = self.invoker.invoke(body, JSON)
        except InvokeError as exc:
            self._count("failed")
            if self._stopping:  # shutting down: the watcher's snapshot sends it on the next start
                log.info("filer adapter: %s/%s abandoned at shutdown: %s", ref.bucket, ref.key, exc)
            else:
                log.warning("filer adapter: %s/%s not delivered: %s", ref.bucket, ref.key, exc)
            return False
        self._count("sent")
        if not result.ok:
            log.warning("filer adapter: preprocess answered %s for %s/%s", result.status, ref.bucket, ref.key)
        if self.on_delivered is not None:
            self.on_delivered([ref])
        if self.in_flight is not None:
            self.in_flight.release([ref])  # after the watcher's snapshot has it: never in neither
        return True

    def _schedule(self, pending: _Pending) -> None:
        with self._wake:
            pending.due = time.monotonic() + pending.backoff
            self._retries.append(pending)
            self._wake.notify()

    def pending_retries(self) -> int:
        """Objects waiting for (or in) another delivery attempt."""
        with self._wake:
            return len(self._retries) + self._in_retry

    def _next_ready(self) -> list[_Pending] | None:
        """Block until some retries are due; None when stopping."""
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                ready = [p for p in self._retries if p.due <= now]
                if ready:
                    self._retries = [p for p in self._retries if p.due > now]
                    self._in_retry = len(ready)
                    return ready
                due = min((p.due for p in self._retries), default=now + 60)
                self._wake.wait(max(0.01, due - now))
            return None

    def _retry_loop(self) -> None:
        while (ready := self._next_ready()) is not None:
            for pending in ready:
                outcome = self._attempt(pending)
                if outcome in {_UNRESOLVED, _UNDELIVERED}:
                    if time.monotonic() - pending.first >= self.retry_for_s:
                        if pending.claimed:
                            self._release(pending.change.ref)
                            if self.in_flight is not None:
                                self.in_flight.release([pending.change.ref])
                        self._count("given_up")
                        log.error("filer adapter: gave up on %s/%s after %.0f s (%s); the watcher will "
                                  "reconcile it", pending.change.ref.bucket, pending.change.ref.key,
                                  self.retry_for_s, outcome)
                    else:
                        pending.backoff = min(pending.backoff * 2, 60.0)
                        self._schedule(pending)
                with self._wake:
                    self._in_retry -= 1

    def start(self) -> FilerAdapter:
        """Listen on 127.0.0.1 (`port`, 0 = any free one) in a background thread."""
        self._server = loopback.serve(_handler_class(self), "filer-adapter", self.port)
        self._stopping = False
        threading.Thread(target=self._retry_loop, name="filer-adapter-retry", daemon=True).start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        loopback.close(self._server)
        self._server = None

    def __enter__(self) -> FilerAdapter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_class(adapter: FilerAdapter) -> type[loopback.Handler]:
    class Handler(loopback.Handler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            data = self.read_body()
            if not adapter.authorized(self.headers.get("Authorization")):
                self._answer(401, "bad token")
                return
            try:
                payload = json.loads(data)
            except ValueError:
                self._answer(400, "not JSON")
                return
            if not isinstance(payload, dict):
                self._answer(400, "not a JSON object")
                return
            try:
                status, what = adapter.handle(payload)
            except Exception as exc:  # a bug: say so loudly; the watcher reconciles the object
                log.exception("filer adapter: event failed")
                status, what = 500, f"error: {exc}"
            self._answer(status, what)

        def _answer(self, status: int, text: str) -> None:
            self.answer(status, json.dumps({"status": text}).encode(), [("Content-Type", JSON)])

    return Handler
