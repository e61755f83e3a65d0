"""Bucket watcher for S3-compatible stores without notifications (strategy C, local-infra.md §3).

Every poll lists the whole bucket (or a prefix) and compares it with a persisted `{key: ETag}`
snapshot. Checkpoints on "greatest key" or "newest LastModified" miss most uploads (keys are not
monotonic; LastModified has 1 s precision), a full listing does not. New and changed keys are sent
to preprocess in batches (one S3 `Records` body per batch, or one OCI CloudEvent per object), and the
snapshot advances only for keys whose batch was delivered, after each batch, written atomically.
So a restart neither misses anything (undelivered keys are still "new") nor repeats anything
(delivered keys are in the snapshot); a crash between a delivery and the save repeats at most that
one batch, which preprocess/predict absorb (results are written with If-None-Match).

Beside the filer adapter, `mark_delivered` records what the adapter delivered so polls do not send it
again. It runs inside the webhook path, so it only updates the snapshot in memory; the snapshot is
written by the next poll or by `run` at most every `persist_every_s` (and by `flush`/`stop`), not once
per object. A crash between a mark and that write loses only the mark: after the restart the watcher
sends those objects once more, a harmless duplicate (predict answers "exists" and writes nothing), and
nothing is missed.

With an `in_flight` ledger shared with the adapter (`triggers.inflight`), a poll skips what the adapter
is delivering at that moment (and the adapter skips what a poll is sending): an object is never in
flight twice. What is skipped is not marked: if that delivery fails it is sent by a later poll.

Cost: one LIST request per 1,000 keys per poll (≈65 µs/key on SeaweedFS), so keep the watched
prefix small (an inbox) or prefer notifications for large buckets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import is_results_location
from fnvision_common.s3client import normalise_etag

from triggers.events import JSON, oci_object_event, s3_records, to_body
from triggers.inflight import InFlight
from triggers.invoker import InvokeError, Invoker
from triggers.snapshot import FileSnapshot, ObjectSnapshot, Snapshot, SnapshotStore

__all__ = ["FileSnapshot", "ObjectSnapshot", "PollStats", "SnapshotStore", "Watcher", "WatcherThread", "main"]

log = logging.getLogger(__name__)

EventFormat = Literal["records", "oci"]


@dataclass
class PollStats:
    """What one poll saw and did."""

    listed: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    sent: int = 0
    failed: int = 0
    in_flight: int = 0
    """Skipped this poll: another source was delivering them."""
    batches: int = 0
    list_s: float = 0.0
    total_s: float = 0.0


@dataclass
class Watcher:
    """Poll one bucket and send new/changed objects to preprocess through an `Invoker`."""

    client: Any
    bucket: str
    invoker: Invoker
    snapshot: SnapshotStore
    prefix: str = ""
    batch_size: int = 16
    event_format: EventFormat = "records"
    results_bucket: str = "results"
    results_prefix: str = ""
    emit_existing: bool = True
    """On the very first poll (no snapshot yet): send what is already there, or only remember it."""
    persist_every_s: float = 0.5
    """How often `run` writes marks from `mark_delivered` between polls."""
    in_flight: InFlight | None = None
    """Shared with the filer adapter: what either source is delivering right now."""
    _state: Snapshot | None = field(default=None, init=False, repr=False)
    _dirty: bool = field(default=False, init=False, repr=False)
    _fresh: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    def list_objects(self) -> Iterator[ObjectRef]:
        """Every object under the prefix, results area and folder markers excluded."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") or is_results_location(
                        self.bucket, key, self.results_bucket, self.results_prefix):
                    continue
                yield ObjectRef(self.bucket, key, normalise_etag(item.get("ETag")), int(item.get("Size", 0)))

    def _bodies(self, refs: list[ObjectRef]) -> list[tuple[list[ObjectRef], bytes]]:
        if self.event_format == "oci":
            return [([ref], to_body(oci_object_event(ref))) for ref in refs]
        return [(refs[i:i + self.batch_size], to_body(s3_records(refs[i:i + self.batch_size])))
                for i in range(0, len(refs), self.batch_size)]

    def _loaded(self) -> Snapshot:
        if self._state is None:
            self._state = self.snapshot.load()
            self._fresh = not self._state
        return self._state

    def _save(self, state: Snapshot) -> None:
        """Write the snapshot (call with the lock held)."""
        self.snapshot.save(state)
        self._dirty = False

    def mark_delivered(self, refs: Iterable[ObjectRef]) -> None:
        """Record objects another source (the filer adapter) delivered, so polls don't resend them.

        In memory only: written by the next poll, by `run` within `persist_every_s`, or by `flush`.
        """
        with self._lock:
            state = self._loaded()
            for ref in refs:
                if ref.bucket == self.bucket and state.get(ref.key) != ref.etag:
                    state[ref.key] = ref.etag
                    self._dirty = True

    def flush(self) -> bool:
        """Write marks not yet persisted; True if the snapshot was written."""
        with self._lock:
            if not self._dirty or self._state is None:
                return False
            self._save(self._state)
            return True

    def poll_once(self) -> PollStats:
        """List, diff against the snapshot, deliver the differences, advance the snapshot."""
        started = time.monotonic()
        stats = PollStats()
        listed = {ref.key: ref for ref in self.list_objects()}
        stats.listed, stats.list_s = len(listed), time.monotonic() - started
        with self._lock:
            state = self._loaded()
            todo = [ref for key, ref in listed.items() if state.get(key) != ref.etag]
            stats.new = sum(1 for ref in todo if ref.key not in state)
            stats.changed = len(todo) - stats.new
            gone = [key for key in state if key not in listed]
            for key in gone:
                del state[key]
            stats.removed = len(gone)
            remember_only = self._fresh and not self.emit_existing
            self._fresh = False
            if remember_only:
                state.update({ref.key: ref.etag for ref in todo})
                todo = []
            if gone or remember_only or self._dirty:
                self._save(state)
        for refs, body in self._bodies(self._claim(todo, state, stats)):
            stats.batches += 1
            try:
                delivered = self._deliver(refs, body, stats)
            finally:
                if self.in_flight is not None:
                    self.in_flight.release(refs)
            if delivered:
                with self._lock:
                    state.update({ref.key: ref.etag for ref in refs})
                    self._save(state)
                stats.sent += len(refs)
        stats.total_s = time.monotonic() - started
        return stats

    def _claim(self, todo: list[ObjectRef], state: Snapshot, stats: PollStats) -> list[ObjectRef]:
        """What this poll sends: not delivered meanwhile by another source, nor in flight there."""
        if self.in_flight is None:
            return todo
        mine: list[ObjectRef] = []
        with self._lock:  # the adapter marks deliveries under this lock too: no gap between the two
            for ref in todo:
                if state.get(ref.key) == ref.etag:
                    continue  # delivered by the adapter since the listing
                if self.in_flight.claim(ref):
                    mine.append(ref)
                else:
                    stats.in_flight += 1
        return mine

    def _deliver(self, refs: list[ObjectRef], body: bytes, stats: PollStats) -> bool:
        try:
            result = self.invoker.invoke(body, JSON)
        except InvokeError as exc:
            log.warning("watcher: delivery failed, will retry next poll: %s", exc)
            stats.failed += len(refs)
            return False
        if result.status >= 500:
            log.warning("watcher: preprocess answered %s, will retry next poll", result.status)
            stats.failed += len(refs)
            return False
        return True

    def run(self, interval: float, stop_event: threading.Event) -> None:
        """Poll every `interval` seconds until `stop_event` is set; errors are logged, not fatal.

        Between polls, marks from `mark_delivered` are written every `persist_every_s`; at the end too.
        """
        next_poll = time.monotonic()
        while not stop_event.is_set():
            try:
                if time.monotonic() >= next_poll:
                    stats = self.poll_once()
                    next_poll = time.monotonic() + interval
                    if stats.sent or stats.failed:
                        log.info("watcher %s/%s: %s", self.bucket, self.prefix, stats)
                else:
                    self.flush()
            except Exception:
                next_poll = time.monotonic() + interval
                log.exception("watcher %s: poll failed", self.bucket)
            stop_event.wait(max(0.0, min(self.persist_every_s, next_poll - time.monotonic())))
        try:
            self.flush()
        except Exception:
            log.exception("watcher %s: could not write the snapshot at stop", self.bucket)

    def start(self, interval: float = 1.0) -> WatcherThread:
        """Run in a daemon thread; stop it with `.stop()` on the returned handle."""
        handle = WatcherThread(self, interval)
        handle.start()
        return handle


class WatcherThread:
    """A watcher running in a background thread."""

    def __init__(self, watcher: Watcher, interval: float) -> None:
        self.watcher = watcher
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=watcher.run, args=(interval, self.stop_event),
                                        name=f"watcher-{watcher.bucket}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop after the current poll and wait for it."""
        self.stop_event.set()
        self._thread.join(timeout)


def main(argv: list[str] | None = None) -> int:
    """`python -m triggers.watcher`: watch a bucket of any S3-compatible store (S3_* environment)."""
    import argparse
    import os
    import sys

    from triggers import options
    from triggers.invoker import HttpInvoker

    env = os.environ
    p = argparse.ArgumentParser(prog="python -m triggers.watcher", description=__doc__.splitlines()[0])
    options.add_common_options(p, env)
    p.add_argument("--prefix", default="")
    p.add_argument("--snapshot", type=Path, default=None, help="default .local/watcher/<bucket>.json")
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--event-format", choices=["records", "oci"], default="records")
    p.add_argument("--skip-existing", action="store_true", help="first run: remember, don't send, what is there")
    p.add_argument("--once", action="store_true", help="poll once and exit (1 if a delivery failed)")
    args = p.parse_args(argv)
    if not args.invoke_url:
        p.error(f"--invoke-url (or {options.PREPROCESS_URL}) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    watcher = Watcher(
        options.s3_client(env), args.bucket, HttpInvoker(args.invoke_url, headers=options.auth_headers(args)),
        FileSnapshot(args.snapshot or Path(".local/watcher") / f"{args.bucket}.json"), prefix=args.prefix,
        batch_size=args.batch_size, event_format=args.event_format,
        results_bucket=args.results_bucket, results_prefix=args.results_prefix,
        emit_existing=not args.skip_existing,
    )
    if args.once:
        stats = watcher.poll_once()
        print(stats)
        return 1 if stats.failed else 0
    stop = threading.Event()
    try:
        watcher.run(args.interval, stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
