"""Backfill through the real local stack: SeaweedFS + fnlocal + the real preprocess and predict.

200 small JPEGs in a bucket, 50 of them already classified by preprocess itself; a backfill must
then process exactly the other 150, and a run killed with SIGKILL must resume without repeating
any work. "No repeated work" is read from predict's own answers: it writes each result with
If-None-Match and says `created`, or `exists` when the document was already there, so every answer
of the resumed run must say `created`.

The stack runs with `source="none"` so no event source classifies the uploads behind our back. The
backfill CLI runs in a subprocess (as an operator would run it) and reaches preprocess through a
small recording proxy in this process, which keeps preprocess's answers even for the calls whose
client was killed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fnvision_common.objects import ObjectRef
from PIL import Image

from devstack.pipeline import read_manifest
from devstack.ports import free_port
from devstack.seaweedfs import find_free_base
from devstack.stack import LocalStack, StackOptions
from modelbuild.photos import sample_photos, write_jpegs
from triggers.backfill import Backfill, Checkpoint, Model
from triggers.events import s3_records, to_body
from triggers.invoker import HttpInvoker

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
N, DONE = 200, 50


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("stack")
    (data / "weed-workdir").mkdir()  # devstack only creates it for source="filer" (reported)
    options = StackOptions(root=REPO, data_dir=data, s3_base_port=find_free_base(), fn_port=free_port(),
                           source="none")
    with LocalStack(options) as running:
        yield running


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Model:
    manifest = read_manifest(model_dir)
    return Model(manifest.name, manifest.version)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Small JPEG variants (64–160 px on the long side) of the sample photos: quick to classify."""
    out = []
    for i, path in enumerate(write_jpegs(tmp_path_factory.mktemp("photos"), sample_photos())):
        image = Image.open(path).convert("RGB")
        for side in (64, 96, 128, 160):
            small = image.copy()
            small.thumbnail((side, side))
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG", quality=80 + i % 10)
            out.append(buffer.getvalue())
    return out


class RecordingProxy:
    """Forwards POSTs to preprocess and keeps every answer (also those whose client was killed)."""

    def __init__(self, target: str) -> None:
        self.invoker = HttpInvoker(target, backoff_s=0.05)
        self.answers: list[dict[str, Any]] = []
        self.inflight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with proxy._lock:
                    proxy.inflight += 1
                try:
                    result = proxy.invoker.invoke(body, self.headers.get("Content-Type", "application/json"))
                    with proxy._lock:
                        proxy.answers.append(json.loads(result.body))
                finally:
                    with proxy._lock:
                        proxy.inflight -= 1
                try:
                    self.send_response(result.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(result.body)))
                    self.end_headers()
                    self.wfile.write(result.body)
                except OSError:
                    pass  # the backfill was killed while this call ran

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/invoke/preprocess"

    def statuses(self) -> dict[str, str]:
        """{object key: predict's recording status} over every answer so far (a key twice: the last)."""
        with self._lock:
            items = [p for a in self.answers for p in a["predictions"]]
        return {item["result"]["key"]: item["result"]["status"] for item in items}

    def all_items(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p for a in self.answers for p in a["predictions"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _seed(stack: LocalStack, jpegs: list[bytes], model: Model) -> str:
    """A fresh bucket with N photos; DONE of them (every fourth) classified by preprocess itself."""
    client = stack.seaweed.client()
    bucket = f"bf-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    refs = []
    for i in range(N):
        key = f"photos/{i:03d} é+.jpg"
        etag = client.put_object(Bucket=bucket, Key=key, Body=jpegs[i % len(jpegs)], ContentType="image/jpeg")
        refs.append(ObjectRef(bucket, key, etag["ETag"].strip('"')))
    invoker = HttpInvoker(stack.fnlocal.invoke_url("vision", "preprocess"))
    done = refs[::N // DONE][:DONE]
    for i in range(0, DONE, 10):
        answer = json.loads(invoker.invoke(to_body(s3_records(done[i:i + 10])), "application/json").body)
        assert [p["result"]["status"] for p in answer["predictions"]] == ["created"] * len(done[i:i + 10]), answer
    assert len(_result_docs(stack, bucket, model)) == DONE
    return bucket


def _result_docs(stack: LocalStack, bucket: str, model: Model) -> list[str]:
    pages = stack.seaweed.client().get_paginator("list_objects_v2").paginate(Bucket="results", Prefix=f"{bucket}/")
    suffix = f"/{model.name}@{model.version}.json"
    return [item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(suffix)]


def _cli(stack: LocalStack, bucket: str, url: str, ckpt: Path, model_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "triggers.backfill", "--bucket", bucket, "--invoke-url", url,
            "--model-manifest", str(model_dir / "manifest.json"), "--checkpoint", str(ckpt), "--no-progress",
            *extra]


def _env(stack: LocalStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "RESULTS_", "INPUT_"))}
    return {**env, **stack.seaweed.env(), "RESULTS_BUCKET": "results", "PYTHONPATH": str(REPO)}


def test_backfill_processes_exactly_the_150_without_results(stack: LocalStack, jpegs: list[bytes], model: Model,
                                                            tmp_path: Path) -> None:
    bucket = _seed(stack, jpegs, model)
    proxy = RecordingProxy(stack.fnlocal.invoke_url("vision", "preprocess"))
    try:
        job = Backfill(stack.seaweed.client(), HttpInvoker(proxy.url), bucket, model,
                       checkpoint=Checkpoint(tmp_path / "ck.jsonl", bucket, model).load(), batch_size=8,
                       concurrency=2, progress=False)
        dry = job.run(dry_run=True)
        assert (dry.listed, dry.skipped_results, dry.to_do) == (N, DONE, N - DONE)
        started = time.monotonic()
        summary = Backfill(stack.seaweed.client(), HttpInvoker(proxy.url), bucket, model,
                           checkpoint=Checkpoint(tmp_path / "ck.jsonl", bucket, model).load(), batch_size=8,
                           concurrency=2, progress=False).run()
        wall = time.monotonic() - started
    finally:
        proxy.stop()
    assert (summary.listed, summary.skipped_results, summary.processed, summary.failed) == (N, DONE, N - DONE, 0)
    items = proxy.all_items()
    assert len(items) == N - DONE and {i["result"]["status"] for i in items} == {"created"}
    assert all(i["status"] == "ok" and i["top_k"] for i in items)
    assert len(_result_docs(stack, bucket, model)) == N
    print(f"\nbackfill through the real stack: {summary.processed} images in {wall:.1f} s "
          f"({summary.processed / wall:.1f} images/s end to end, {summary.images_per_s:.1f} while sending)")


def test_killed_backfill_resumes_without_repeating_work(stack: LocalStack, jpegs: list[bytes], model: Model,
                                                        model_dir: Path, tmp_path: Path) -> None:
    bucket = _seed(stack, jpegs, model)
    ckpt = tmp_path / "ck.jsonl"
    proxy = RecordingProxy(stack.fnlocal.invoke_url("vision", "preprocess"))
    try:
        cmd = _cli(stack, bucket, proxy.url, ckpt, model_dir, "--batch-size", "4", "--concurrency", "2")
        killed = subprocess.Popen(cmd, cwd=REPO, env=_env(stack), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while (len(Checkpoint(ckpt, bucket, model).load().done) if ckpt.exists() else 0) < 24:
            assert killed.poll() is None, killed.communicate()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.005)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        while proxy.inflight:  # calls the dead client left behind finish in preprocess
            time.sleep(0.01)
        first = proxy.statuses()
        checkpointed = Checkpoint(ckpt, bucket, model).load()
        assert 24 <= len(checkpointed.done) < N - DONE, "the kill landed mid-run"
        assert set(first.values()) == {"created"}
        assert not checkpointed.submitted

        resumed = subprocess.run([*_cli(stack, bucket, proxy.url, ckpt, model_dir), "--json"], cwd=REPO,
                                 env=_env(stack), capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        everything = proxy.all_items()
    finally:
        proxy.stop()
    summary = json.loads(resumed.stdout.splitlines()[-1])
    second = everything[len(first):]
    # the resumed run sent only what had no result: predict created every one of them, none "exists"
    assert {i["result"]["status"] for i in second} == {"created"}
    assert len(everything) == N - DONE and len({i["result"]["key"] for i in everything}) == N - DONE
    assert summary["processed"] == N - DONE - len(first) == len(second)
    assert summary["skipped_checkpoint"] == len(checkpointed.done)
    assert summary["skipped_results"] == DONE + len(first) - len(checkpointed.done)  # incl. in flight at the kill
    assert len(_result_docs(stack, bucket, model)) == N
    final = Checkpoint(ckpt, bucket, model).load()
    assert checkpointed.done <= final.done and len(final.done) == len(checkpointed.done) + len(second)
