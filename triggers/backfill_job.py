"""The backfill job: list a bucket, drop what is done, send the rest to preprocess in batches.

`Backfill.run()` does the work; `triggers.backfill` is its command line (and describes the steps),
`triggers.checkpoint` the resumable record of what was sent.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import failure_key, is_results_location, result_key
from fnvision_common.s3client import is_not_found, normalise_etag

from triggers.checkpoint import DONE, SUBMITTED, Checkpoint, Ident, Model
from triggers.events import JSON, oci_object_event, s3_records, to_body
from triggers.invoker import InvokeError, Invoker


@dataclass
class Summary:
    """What one run saw and did (counts of objects, except `batches`: calls)."""

    listed: int = 0
    skipped_results: int = 0
    skipped_checkpoint: int = 0
    rechecked: int = 0
    """Detached (`submitted`) checkpoint entries looked up again; `resent` of them had no result yet."""
    resent: int = 0
    to_do: int = 0
    processed: int = 0
    failed: int = 0
    batches: int = 0
    send_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.send_s if self.send_s > 0 else 0.0

    def lines(self, dry_run: bool, detached: bool) -> list[str]:
        done = self.skipped_results + self.skipped_checkpoint
        if dry_run:
            return [f"total {self.listed}, already done {done} (results {self.skipped_results}, "
                    f"checkpoint {self.skipped_checkpoint}), to do {self.to_do}"]
        verb = "submitted (detached)" if detached else "processed"
        lines = [f"{verb} {self.processed}, skipped {done}, failed {self.failed} of {self.listed} listed "
                 f"in {self.send_s:.1f} s ({self.images_per_s:.1f} images/s, {self.batches} calls)"]
        if self.rechecked:
            lines.append(f"detached calls from the checkpoint: {self.rechecked - self.resent} done, "
                         f"{self.resent} without a result yet (sent again)")
        return lines


@dataclass
class Backfill:
    """One backfill run; `run()` does the work, the CLI only builds it."""

    client: Any
    invoker: Invoker
    bucket: str
    model: Model
    checkpoint: Checkpoint | None = None
    prefix: str = ""
    modified_since: datetime | None = None
    results_bucket: str = "results"
    results_prefix: str = ""
    batch_size: int = 8
    concurrency: int = 4
    detached: bool = False
    event_format: str = "records"
    skip_failed: bool = False
    """Also skip objects that have a failure record for their ETag."""
    trust_checkpoint: bool = False
    """Skip detached (`submitted`) checkpoint entries without checking that their result exists."""
    progress: bool = True
    on_batch: Callable[[Sequence[ObjectRef], bool], None] | None = None
    """Called after each call with (refs, delivered): a hook for tests and callers."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set to stop after the calls in flight (an interrupted run, resumable)."""
    _confirmed: list[ObjectRef] = field(default_factory=list, init=False, repr=False)
    """Detached checkpoint entries whose result exists now (recorded as done before sending)."""

    def list_objects(self) -> Iterator[ObjectRef]:
        """Objects under the prefix, newer than `modified_since`, results area excluded."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") or is_results_location(self.bucket, key, self.results_bucket,
                                                            self.results_prefix):
                    continue
                if self.modified_since is not None and item["LastModified"] < self.modified_since:
                    continue
                yield ObjectRef(self.bucket, key, normalise_etag(item["ETag"]), int(item.get("Size", 0)))

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.results_bucket, Key=key)
            return True
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise

    def is_done(self, ref: ObjectRef, *, failure_counts: bool | None = None) -> bool:
        """True if the result for this version and model (or, optionally, a failure record) exists."""
        prefix, name, version = self.results_prefix, self.model.name, self.model.version
        if self._exists(result_key(prefix, ref.bucket, ref.key, ref.etag, name, version)):
            return True
        if failure_counts is None:
            failure_counts = self.skip_failed
        return failure_counts and self._exists(failure_key(prefix, ref.bucket, ref.key, ref.etag))

    def plan(self, summary: Summary) -> list[ObjectRef]:
        """List and drop what is done; returns the objects to send."""
        done: set[Ident] = self.checkpoint.done if self.checkpoint else set()
        submitted: set[Ident] = self.checkpoint.submitted if self.checkpoint else set()
        candidates = []
        for ref in self.list_objects():
            summary.listed += 1
            ident = (ref.key, ref.etag)
            if ident in done or (self.trust_checkpoint and ident in submitted):
                summary.skipped_checkpoint += 1
            else:
                candidates.append(ref)

        def check(ref: ObjectRef) -> bool:
            # a detached call that preprocess finished wrote a result or a failure record
            was_submitted = (ref.key, ref.etag) in submitted
            return self.is_done(ref, failure_counts=True if was_submitted else None)

        with ThreadPoolExecutor(max_workers=max(8, self.concurrency)) as pool:
            flags = list(pool.map(check, candidates))
        todo = [ref for ref, is_done in zip(candidates, flags, strict=True) if not is_done]
        summary.skipped_results = len(candidates) - len(todo)
        summary.rechecked = sum(1 for ref in candidates if (ref.key, ref.etag) in submitted)
        summary.resent = sum(1 for ref in todo if (ref.key, ref.etag) in submitted)
        summary.to_do = len(todo)
        self._confirmed = [ref for ref, is_done in zip(candidates, flags, strict=True)
                           if is_done and (ref.key, ref.etag) in submitted]
        return todo

    def _body(self, refs: Sequence[ObjectRef]) -> bytes:
        if self.event_format == "oci":
            return to_body(oci_object_event(refs[0]))
        return to_body(s3_records(refs))

    def _send(self, refs: Sequence[ObjectRef]) -> str | None:
        """Deliver one batch; return an error text or None."""
        try:
            result = self.invoker.invoke(self._body(refs), JSON, detached=self.detached)
        except InvokeError as exc:
            return str(exc)
        if not result.ok:
            return f"HTTP {result.status}: {result.body[:200].decode('utf-8', 'replace')}"
        if self.checkpoint is not None:
            # A detached call's acknowledgement has no body (202 from OCI or fnlocal before the run, 200
            # from a self-hosted Fn server after it): the outcome is unknown, so `submitted`, re-checked
            # by a resumed run. A body is the function's own answer (the endpoint ran the call
            # synchronously, as an HTTP trigger does): then it is `done`, as for any sync call.
            submitted = self.detached and not result.body
            self.checkpoint.add(refs, SUBMITTED if submitted else DONE)
        return None

    def send(self, todo: Sequence[ObjectRef], summary: Summary) -> None:
        """Send `todo` in batches with at most `concurrency` calls in flight."""
        size = 1 if self.event_format == "oci" else self.batch_size
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        started = time.monotonic()
        from tqdm import tqdm

        with tqdm(total=len(todo), unit="img", file=sys.stderr, disable=not self.progress,
                  desc=f"backfill {self.bucket}") as bar, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            pending = iter(batches)
            futures = {}
            for batch in pending:  # prime at most `concurrency` calls, then one per completion
                futures[pool.submit(self._send, batch)] = batch
                if len(futures) >= self.concurrency:
                    break
            while futures:
                future = next(as_completed(futures))
                batch = futures.pop(future)
                error = future.result()
                summary.batches += 1
                if error is None:
                    summary.processed += len(batch)
                else:
                    summary.failed += len(batch)
                    summary.errors.append(f"{len(batch)} object(s) from {batch[0].key!r}: {error}")
                bar.update(len(batch))
                if self.on_batch is not None:
                    self.on_batch(batch, error is None)
                if not self.stop.is_set():
                    nxt = next(pending, None)
                    if nxt is not None:
                        futures[pool.submit(self._send, nxt)] = nxt
        summary.send_s = time.monotonic() - started

    def run(self, dry_run: bool = False) -> Summary:
        """Plan, then (unless `dry_run`) send; the checkpoint is closed at the end."""
        summary = Summary()
        try:
            todo = self.plan(summary)
            if not dry_run:
                if self.checkpoint is not None and self._confirmed:
                    self.checkpoint.add(self._confirmed, DONE)  # no need to look them up again
                self.send(todo, summary)
        finally:
            if self.checkpoint is not None:
                self.checkpoint.close()
        return summary
