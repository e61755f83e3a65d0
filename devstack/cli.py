"""`python -m devstack run|serve|s3` — the commands behind `make run` and `make serve`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from devstack.pipeline import Outcome, read_manifest, upload_files, wait_for_results
from devstack.seaweedfs import SeaweedFS
from devstack.snapshot import write_snapshot
from devstack.stack import LocalStack, StackOptions

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "functions" / "predict" / "model"
MAX_LIMIT = 200
"""The most cards one gallery page holds (results' MAX_LIMIT)."""


def _options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        root=REPO,
        data_dir=Path(args.data_dir),
        s3_base_port=args.s3_base_port,
        fn_port=args.port,
        source=args.source,
    )


def _print_outcome(outcome: Outcome) -> None:
    latency = f"{outcome.latency_s * 1000:8.0f} ms" if outcome.latency_s is not None else "       —   "
    if outcome.status == "result":
        top = outcome.top()
        assert top is not None
        label, score = top
        what = f"{label[:28]:<28} {score:6.3f}"
    elif outcome.status == "failure":
        error = (outcome.document or {}).get("error", {})
        what = f"FAILED {error.get('code', '?')}: {str(error.get('message', ''))[:40]}"
    else:
        what = "no result in time"
    print(f"{outcome.upload.key:<44} {what:<36} {latency}", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Start the stack, upload the sample photos, wait for every result, print them, stop."""
    from modelbuild.photos import sample_photos, write_jpegs

    manifest = read_manifest(MODEL_DIR)
    options = _options(args)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    print(f"fn-vision: starting SeaweedFS (:{options.s3_base_port + 4}), fnlocal (:{options.fn_port}), "
          f"event source: {options.source}", flush=True)
    started = time.monotonic()
    with LocalStack(options) as stack, tempfile.TemporaryDirectory() as tmp:
        assert stack.seaweed is not None
        client = stack.seaweed.client()
        files = write_jpegs(tmp, sample_photos())
        print(f"stack up in {time.monotonic() - started:.1f}s; uploading {len(files)} photos to "
              f"s3://{options.input_bucket}/samples/{run_id}/", flush=True)
        print(f"{'key':<44} {'top label':<28} {'score':>6}  upload→result", flush=True)
        uploads = upload_files(client, options.input_bucket, files, prefix=f"samples/{run_id}/")
        outcomes = wait_for_results(
            client, uploads, input_bucket=options.input_bucket, results_bucket=options.results_bucket,
            results_prefix=options.results_prefix, model_name=manifest.name,
            model_version=manifest.version, timeout_s=args.timeout, on_done=_print_outcome,
        )
        out_dir = Path(args.data_dir) / "results" / run_id
        out_dir.mkdir(parents=True, exist_ok=True)
        for outcome in outcomes:
            if outcome.document is not None:
                local = out_dir / (Path(outcome.upload.key).name + ".json")
                local.write_text(json.dumps(outcome.document, indent=2))
        print("\nresult documents:")
        for outcome in outcomes:
            if outcome.document is not None:
                print(f"  s3://{options.results_bucket}/{outcome.result_key}")
        print(f"local copies: {out_dir}")
        assert stack.fnlocal is not None
        snapshot = write_snapshot(
            stack.fnlocal.trigger_url("vision", "/results/gallery"),
            {"bucket": options.input_bucket, "prefix": f"samples/{run_id}/", "limit": min(len(uploads), MAX_LIMIT)},
            out_dir / "index.html",
        )
        done = [o for o in outcomes if o.status == "result"]
        latencies = sorted(o.latency_s for o in done if o.latency_s is not None)
        if latencies:
            print(f"{len(done)}/{len(outcomes)} classified; upload→result p50 "
                  f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
                  f"(includes the cold start of both functions)")
    print("stack stopped.")
    print(f"gallery of this run (opens without a server): {snapshot}")
    return 0 if len(done) == len(outcomes) else 1


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(0.5)


def cmd_serve(args: argparse.Namespace) -> int:
    """Keep the stack up until Ctrl-C and print how to use it."""
    options = _options(args)
    with LocalStack(options) as stack:
        assert stack.seaweed is not None and stack.fnlocal is not None
        s3 = stack.seaweed.endpoint_url
        fl = stack.fnlocal
        print(f"""fn-vision local stack is up (Ctrl-C stops everything).

  S3 (SeaweedFS)  {s3}   access key {stack.seaweed.access_key} / secret {stack.seaweed.secret_key}
  fnlocal         {fl.url}   status: {fl.url}/status
  event source    {options.source} → preprocess;  results in s3://{options.results_bucket}/
  gallery         {fl.trigger_url('vision', '/results/gallery')}
  results API     {fl.trigger_url('vision', '/results')}   docs: {fl.trigger_url('vision', '/results/docs')}

Upload a photo (its result appears in the results bucket), with any S3 client (path-style, us-east-1):
  .venv/bin/python -m devstack upload cat.jpg
  AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=devsecret aws --endpoint-url {s3} s3 cp cat.jpg s3://{options.input_bucket}/

Classify through the HTTP trigger:
  curl -s -F image=@cat.jpg {fl.trigger_url('vision', '/classify')}
  curl -s --data-binary @cat.jpg -H 'Content-Type: image/jpeg' {fl.trigger_url('vision', '/classify')}

Invoke the functions (like `fn invoke`):
  echo '{{"bucket":"{options.input_bucket}","key":"cat.jpg"}}' | \\
    .venv/bin/fnlocal invoke vision preprocess --endpoint {fl.url} --content-type application/json
  curl -s -X POST {fl.invoke_url('vision', 'preprocess')} -H 'Content-Type: application/json' \\
    -d '{{"bucket":"{options.input_bucket}","key":"cat.jpg"}}'
""", flush=True)
        _wait_for_signal()
    print("stack stopped.")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    """Upload files into the input bucket of a running stack (`make serve`)."""
    server = SeaweedFS(data_dir=Path(args.data_dir) / "seaweedfs", base_port=args.s3_base_port)
    client = server.client()
    for upload in upload_files(client, "images", [Path(f) for f in args.files], prefix=args.prefix):
        print(f"s3://images/{upload.key}  etag {upload.etag}")
    return 0


def cmd_s3(args: argparse.Namespace) -> int:
    """Run only SeaweedFS (for trying boto3 or the watcher against it)."""
    with SeaweedFS(data_dir=Path(args.data_dir) / "seaweedfs", base_port=args.s3_base_port,
                   buckets=("images", "results")) as server:
        print(f"SeaweedFS S3 at {server.endpoint_url} (dev / devsecret); Ctrl-C stops it", flush=True)
        _wait_for_signal()
    return 0


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="fn-vision local stack")
    parser.add_argument("--data-dir", default=os.environ.get("VISION_DATA_DIR", str(REPO / ".local")))
    parser.add_argument("--s3-base-port", type=int, default=int(os.environ.get("VISION_S3_BASE_PORT", "8330")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("VISION_FN_PORT", "8080")),
                        help="fnlocal HTTP port")
    parser.add_argument("--source", choices=["filer", "watcher", "none"], default="filer",
                        help="event source feeding preprocess (default: SeaweedFS filer webhook)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="classify the bundled sample photos end to end, then stop")
    run.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for all results")
    sub.add_parser("serve", help="keep the stack up until Ctrl-C")
    sub.add_parser("s3", help="run only SeaweedFS")
    upload = sub.add_parser("upload", help="upload files into the input bucket of a running stack")
    upload.add_argument("files", nargs="+")
    upload.add_argument("--prefix", default="")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from a CI runner) must unwind like Ctrl-C so every child process is stopped.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    handler = {"run": cmd_run, "serve": cmd_serve, "s3": cmd_s3, "upload": cmd_upload}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
