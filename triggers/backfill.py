"""Backfill: send the objects already in a bucket through preprocess, once each.

    vision-backfill --bucket images --invoke-url http://127.0.0.1:8080/invoke/<preprocess fn id>
    python -m triggers.backfill --bucket images --prefix 2026/ --modified-since 2026-01-01 --dry-run

1. List the bucket (prefix, `--modified-since`), leaving out the results area and folder markers.
2. Skip what is done: objects the checkpoint has as `done`, and objects whose result document for
   their current ETag and the current model version exists (HEAD `result_key(...)`, contracts.md §5).
3. Send the rest as batches of references (one S3 `Records` body per batch) with at most
   `--concurrency` calls in flight; `--detached` for Fn detached invocations on an invoke endpoint.
4. Append each delivered batch to the checkpoint (triggers/checkpoint.py), so an interrupted run
   resumes without sending anything twice; print a summary; exit 1 if anything failed.

Detached calls are answered without the function's answer: OCI Functions (and fnlocal by default)
answer 202 at once and run the function later; a self-hosted Fn server runs it first, then answers 200
with an empty body (so there `--detached` saves no time: each call still takes as long as the
function, and only `--concurrency` bounds the work in flight). Either way the call is only
*submitted*: the function may have failed. So the checkpoint records it as `submitted`, and a
resumed run skips such an object only if its result (or failure record) exists by then, and sends it
again otherwise; `--trust-checkpoint` skips them without looking. Resume an OCI detached backfill
after its calls had time to finish, or the ones still queued are sent a second time (harmless:
results are written with If-None-Match, but work). An endpoint that answers with a body ran the call
synchronously (an HTTP trigger, a gateway): that batch is `done`, as without `--detached`.

Options and environment (INPUT_BUCKET, VISION_PREPROCESS_URL, AUTH_TOKEN, RESULTS_BUCKET,
RESULTS_PREFIX, S3_*) are the functions' names: see triggers/options.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from triggers import options
from triggers.backfill_job import Backfill, Summary
from triggers.checkpoint import BackfillError, Checkpoint, Model
from triggers.invoker import HttpInvoker

__all__ = ["Backfill", "BackfillError", "Checkpoint", "Model", "Summary", "build_parser", "main", "parse_time"]

DEFAULT_MANIFEST = Path("functions/predict/model/manifest.json")


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


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="vision-backfill",
                                description="Send existing objects through preprocess, once each.")
    options.add_common_options(p, env)
    p.add_argument("--prefix", default="")
    p.add_argument("--modified-since", type=parse_time, help="only objects modified at/after (ISO 8601, UTC)")
    p.add_argument("--model-manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--model-name")
    p.add_argument("--model-version")
    p.add_argument("--concurrency", type=_positive, default=4)
    p.add_argument("--batch-size", type=_positive, default=8)
    p.add_argument("--event-format", choices=["records", "oci"], default="records",
                   help="records: S3 Records batches; oci: one CloudEvent per object")
    p.add_argument("--detached", action="store_true",
                   help="Fn detached invocations (invoke endpoint): acknowledged without the function's answer, "
                        "202 at once on OCI, 200 after the run on a self-hosted Fn server")
    p.add_argument("--skip-failed", action="store_true", help="also skip objects with a failure record")
    p.add_argument("--checkpoint", type=Path, help="default .local/backfill/<bucket>.jsonl")
    p.add_argument("--no-checkpoint", action="store_true")
    p.add_argument("--fresh", action="store_true", help="discard an existing checkpoint")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="skip detached (submitted) checkpoint entries without checking that their result exists")
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
            raise BackfillError(f"--invoke-url (or {options.PREPROCESS_URL}) is required unless --dry-run")
        checkpoint = None
        if not args.no_checkpoint:
            path = args.checkpoint or Path(".local/backfill") / f"{args.bucket}.jsonl"
            if args.fresh:
                path.unlink(missing_ok=True)
            checkpoint = Checkpoint(path, args.bucket, model).load()
    except BackfillError as exc:
        print(f"vision-backfill: {exc}", file=sys.stderr)
        return 2
    invoker = HttpInvoker(args.invoke_url or "http://127.0.0.1:1/", headers=options.auth_headers(args))
    job = Backfill(
        client=options.s3_client(os.environ), invoker=invoker, bucket=args.bucket,
        model=model, checkpoint=checkpoint, prefix=args.prefix, modified_since=args.modified_since,
        results_bucket=args.results_bucket, results_prefix=args.results_prefix,
        batch_size=args.batch_size, concurrency=args.concurrency, detached=args.detached,
        event_format=args.event_format, skip_failed=args.skip_failed, trust_checkpoint=args.trust_checkpoint,
        progress=not args.no_progress,
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
        print(json.dumps({**summary.__dict__, "images_per_s": round(summary.images_per_s, 2)}, ensure_ascii=False))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
