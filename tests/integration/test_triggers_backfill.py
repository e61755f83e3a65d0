"""Backfill over 200 objects (50 already done) and a killed run that resumes without repeating."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fnvision_common.result_keys import result_key

from triggers.fakefn import FakePreprocess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MODEL = ("fake-model", "0.0.0")


def _seed(s3: Any, bucket: str, results: str, n: int, done: int) -> dict[str, str]:
    etags = {}
    for i in range(n):
        key = f"photos/{i:03d} é+.jpg"
        etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=b"img%d" % i)["ETag"].strip('"')
    for key in list(etags)[::n // done][:done]:
        s3.put_object(Bucket=results, Key=result_key("", bucket, key, etags[key], *MODEL), Body=b"{}")
    return etags


def _cmd(bucket: str, results: str, url: str, ckpt: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "triggers.backfill", "--bucket", bucket, "--results-bucket", results,
            "--invoke-url", url, "--model-name", MODEL[0], "--model-version", MODEL[1],
            "--checkpoint", str(ckpt), "--concurrency", "4", "--batch-size", "5", *extra]


def _env(seaweed: Any) -> dict[str, str]:
    return {**os.environ, **seaweed.env(), "PYTHONPATH": str(REPO)}


def test_200_objects_50_done_sends_exactly_150(seaweed: Any, s3: Any, new_bucket: Callable[[str], str],
                                               tmp_path: Path) -> None:
    bucket, results = new_bucket("bf"), new_bucket("res")
    etags = _seed(s3, bucket, results, 200, 50)
    with FakePreprocess(s3, results_bucket=results, model_name=MODEL[0], model_version=MODEL[1]) as fake:
        run = subprocess.run(_cmd(bucket, results, fake.url, tmp_path / "ck.jsonl", "--json"), cwd=REPO,
                             env=_env(seaweed), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        received = fake.refs_received()
    assert len(received) == 150 and len({r.key for r in received}) == 150
    assert all(r.etag == etags[r.key] for r in received)
    assert "processed 150, skipped 50, failed 0 of 200 listed" in run.stdout
    assert "100%" in run.stderr  # the progress bar went to stderr


def test_killed_run_resumes_without_repeating(seaweed: Any, s3: Any, new_bucket: Callable[[str], str],
                                              tmp_path: Path) -> None:
    bucket, results = new_bucket("bf"), new_bucket("res")
    _seed(s3, bucket, results, 200, 50)
    ckpt = tmp_path / "ck.jsonl"
    with FakePreprocess(s3, results_bucket=results, model_name=MODEL[0], model_version=MODEL[1],
                        delay_s=0.05) as fake:
        proc = subprocess.Popen(_cmd(bucket, results, fake.url, ckpt, "--no-progress"), cwd=REPO,
                                env=_env(seaweed), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(fake.refs_received()) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        while fake.inflight:  # requests the dead client left behind finish on the server side
            time.sleep(0.01)
        first = [r.key for r in fake.refs_received()]
        assert 40 <= len(first) < 150, "kill landed mid-run"

        resumed = subprocess.run(_cmd(bucket, results, fake.url, ckpt, "--no-progress"), cwd=REPO,
                                 env=_env(seaweed), capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        everything = Counter(r.key for r in fake.refs_received())
    assert len(everything) == 150
    assert max(everything.values()) == 1, "an object was sent twice"
    assert f"processed {150 - len(first)}, skipped {50 + len(first)}" in resumed.stdout
