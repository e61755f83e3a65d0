"""Backfill: send the objects already in a bucket through preprocess, once each.

    vision-backfill --bucket images --invoke-url http://127.0.0.1:8080/invoke/<preprocess fn id>
    python -m triggers.backfill --bucket images --prefix 2026/ --modified-since 2026-01-01 --dry-run

1. List the bucket (prefix, `--modified-since`), leaving out the results area and folder markers.
2. Skip what is done: objects in the checkpoint file, and objects whose result document for their
   current ETag and the current model version exists (HEAD `result_key(...)`, docs/contracts.md §5).
3. Send the rest as batches of references (one S3 `Records` body per batch) with at most
   `--concurrency` calls in flight; `--detached` for a real Fn server (202, results come later).
4. Append each delivered batch to the checkpoint (JSON lines, fsync'ed), so an interrupted run
   resumes without sending anything twice; print a summary; exit 1 if anything failed.

Storage settings come from the S3_* environment (docs/contracts.md §7), results location from
RESULTS_BUCKET / RESULTS_PREFIX, the invoke URL from `--invoke-url` or VISION_PREPROCESS_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from common.result_keys import failure_key, is_results_location, result_key
from common.s3client import S3Settings, is_not_found, make_client, normalise_etag
from triggers.events import JSON, ObjectRef, oci_object_event, s3_records, to_body
from triggers.invoker import HttpInvoker, InvokeError, Invoker

CHECKPOINT_SCHEMA = "fn-vision/backfill-checkpoint@1"
DEFAULT_MANIFEST = Path("functions/predict/model/manifest.json")


class BackfillError(RuntimeError):
    """The run cannot start (bad arguments, a checkpoint from another run)."""


@dataclass(frozen=True)
class Model:
    name: str
    version: str

    @classmethod
    def from_manifest(cls, path: Path) -> Model:
        """Read name and version from predict's model manifest."""
        try:
            manifest = json.loads(path.read_text())
            return cls(str(manifest["name"]), str(manifest["version"]))
        except (OSError, ValueError, KeyError) as exc:
            raise BackfillError(f"cannot read model name/version from {path}: {exc}") from exc


class Checkpoint:
    """Append-only JSON-lines record of delivered `(key, etag)` pairs for one bucket and model."""

    def __init__(self, path: Path, bucket: str, model: Model) -> None:
        self.path = path
        self.header = {"schema": CHECKPOINT_SCHEMA, "bucket": bucket,
                       "model": f"{model.name}@{model.version}"}
        self.done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._out: TextIO | None = None

    def load(self) -> Checkpoint:
        """Read an existing checkpoint (a torn last line from a kill is ignored)."""
        if not self.path.exists():
            return self
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if lines:
            header = json.loads(lines[0])
            if header != self.header:
                raise BackfillError(f"checkpoint {self.path} belongs to another run ({header}); "
                                    "use --fresh or another --checkpoint")
        for line in lines[1:]:
            try:
                item = json.loads(line)
                self.done.add((item["key"], item["etag"]))
            except (ValueError, KeyError):
                continue
        return self

    def add(self, refs: Sequence[ObjectRef]) -> None:
        """Record delivered objects durably."""
        with self._lock:
            if self._out is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                new = not self.path.exists() or self.path.stat().st_size == 0
                self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                if new:
                    self._out.write(json.dumps(self.header) + "\n")
            for ref in refs:
                self._out.write(json.dumps({"key": ref.key, "etag": ref.etag}, ensure_ascii=False) + "\n")
                self.done.add((ref.key, ref.etag))
            self._out.flush()
            os.fsync(self._out.fileno())

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


@dataclass
class Summary:
    listed: int = 0
    skipped_results: int = 0
    skipped_checkpoint: int = 0
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
        return [f"{verb} {self.processed}, skipped {done}, failed {self.failed} of {self.listed} listed "
                f"in {self.send_s:.1f} s ({self.images_per_s:.1f} images/s, {self.batches} calls)"]


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
    progress: bool = True
    on_batch: Callable[[Sequence[ObjectRef], bool], None] | None = None
    """Called after each call with (refs, delivered): a hook for tests and callers."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set to stop after the calls in flight (an interrupted run, resumable)."""

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

    def is_done(self, ref: ObjectRef) -> bool:
        """True if the result for this version and model (or, optionally, a failure record) exists."""
        prefix, name, version = self.results_prefix, self.model.name, self.model.version
        if self._exists(result_key(prefix, ref.bucket, ref.key, ref.etag, name, version)):
            return True
        return self.skip_failed and self._exists(failure_key(prefix, ref.bucket, ref.key, ref.etag))

    def plan(self, summary: Summary) -> list[ObjectRef]:
        """List and drop what is done; returns the objects to send."""
        done = self.checkpoint.done if self.checkpoint else set()
        candidates = []
        for ref in self.list_objects():
            summary.listed += 1
            if (ref.key, ref.etag) in done:
                summary.skipped_checkpoint += 1
            else:
                candidates.append(ref)
        with ThreadPoolExecutor(max_workers=max(8, self.concurrency)) as pool:
            flags = list(pool.map(self.is_done, candidates))
        todo = [ref for ref, is_done in zip(candidates, flags, strict=True) if not is_done]
        summary.skipped_results = len(candidates) - len(todo)
        summary.to_do = len(todo)
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
            self.checkpoint.add(refs)
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
                self.send(todo, summary)
        finally:
            if self.checkpoint is not None:
                self.checkpoint.close()
        return summary


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(prog="vision-backfill",
                                description="Send existing objects through preprocess, once each.")
    p.add_argument("--bucket", default=env.get("VISION_INPUT_BUCKET", "images"))
    p.add_argument("--prefix", default="")
    p.add_argument("--modified-since", type=parse_time, help="only objects modified at/after (ISO 8601, UTC)")
    p.add_argument("--invoke-url", default=env.get("VISION_PREPROCESS_URL"),
                   help="preprocess invoke endpoint or HTTP trigger (env VISION_PREPROCESS_URL)")
    p.add_argument("--auth-token", default=env.get("VISION_AUTH_TOKEN"),
                   help="sent as 'Authorization: Bearer ...' (for an HTTP trigger that checks it)")
    p.add_argument("--results-bucket", default=env.get("RESULTS_BUCKET", "results"))
    p.add_argument("--results-prefix", default=env.get("RESULTS_PREFIX", ""))
    p.add_argument("--model-manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--model-name")
    p.add_argument("--model-version")
    p.add_argument("--concurrency", type=_positive, default=4)
    p.add_argument("--batch-size", type=_positive, default=8)
    p.add_argument("--event-format", choices=["records", "oci"], default="records",
                   help="records: S3 Records batches; oci: one CloudEvent per object")
    p.add_argument("--detached", action="store_true", help="Fn detached invocations (202, real Fn server)")
    p.add_argument("--skip-failed", action="store_true", help="also skip objects with a failure record")
    p.add_argument("--checkpoint", type=Path, help="default .local/backfill/<bucket>.jsonl")
    p.add_argument("--no-checkpoint", action="store_true")
    p.add_argument("--fresh", action="store_true", help="discard an existing checkpoint")
    p.add_argument("--dry-run", action="store_true", help="only count: total / already done / to do")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON too")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `vision-backfill`."""
    args = build_parser().parse_args(argv)
    try:
        if args.model_name and args.model_version:
            model = Model(args.model_name, args.model_version)
        else:
            model = Model.from_manifest(args.model_manifest)
        if not args.invoke_url and not args.dry_run:
            raise BackfillError("--invoke-url (or VISION_PREPROCESS_URL) is required unless --dry-run")
        checkpoint = None
        if not args.no_checkpoint:
            path = args.checkpoint or Path(".local/backfill") / f"{args.bucket}.jsonl"
            if args.fresh:
                path.unlink(missing_ok=True)
            checkpoint = Checkpoint(path, args.bucket, model).load()
    except BackfillError as exc:
        print(f"vision-backfill: {exc}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {args.auth_token}"} if args.auth_token else {}
    invoker = HttpInvoker(args.invoke_url or "http://127.0.0.1:1/", headers=headers)
    job = Backfill(
        client=make_client(S3Settings.from_env(os.environ)), invoker=invoker, bucket=args.bucket,
        model=model, checkpoint=checkpoint, prefix=args.prefix, modified_since=args.modified_since,
        results_bucket=args.results_bucket, results_prefix=args.results_prefix,
        batch_size=args.batch_size, concurrency=args.concurrency, detached=args.detached,
        event_format=args.event_format, skip_failed=args.skip_failed, progress=not args.no_progress,
    )
    try:
        summary = job.run(dry_run=args.dry_run)
    except KeyboardInterrupt:
        print("vision-backfill: interrupted; run again to resume from the checkpoint", file=sys.stderr)
        return 130
    for line in summary.lines(args.dry_run, args.detached):
        print(line)
    for error in summary.errors[:10]:
        print(f"  failed: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps({**summary.__dict__, "images_per_s": round(summary.images_per_s, 2)}))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
