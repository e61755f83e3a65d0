"""Backfill planning, checkpoint and resume against the session's SeaweedFS and the fake endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import failure_key, result_key

from tests.data.manifests import write_manifest
from triggers.backfill import Backfill, BackfillError, Checkpoint, Model, build_parser, main, parse_time
from triggers.fakefn import FakePreprocess, parse_refs
from triggers.invoker import HttpInvoker, InvokeResult

MODEL = Model("fake-model", "0.0.0")


@pytest.fixture
def fake(s3: Any, new_bucket: Callable[[str], str]) -> Iterator[FakePreprocess]:
    with FakePreprocess(s3, results_bucket=new_bucket("res"),
                        model_name=MODEL.name, model_version=MODEL.version) as f:
        yield f


def _fill(s3: Any, bucket: str, n: int, prefix: str = "img/") -> list[str]:
    keys = [f"{prefix}{i:03d} x+y.jpg" for i in range(n)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return keys


def _job(s3: Any, bucket: str, fake: FakePreprocess, ckpt: Path | None, **kw: Any) -> Backfill:
    return Backfill(s3, HttpInvoker(fake.url, max_attempts=2, backoff_s=0.01), bucket, MODEL,
                    checkpoint=Checkpoint(ckpt, bucket, MODEL).load() if ckpt else None,
                    results_bucket=fake.results_bucket, progress=False, **kw)


def test_checkpoint_round_trip_torn_line_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    ck = Checkpoint(path, "images", MODEL).load()
    ck.add([ObjectRef("images", "a b+ü.jpg", "e1"), ObjectRef("images", "b", "e2")])
    ck.close()
    with open(path, "a") as out:
        out.write('{"key": "c", "et')  # killed mid-write
    assert Checkpoint(path, "images", MODEL).load().done == {("a b+ü.jpg", "e1"), ("b", "e2")}
    with pytest.raises(BackfillError):
        Checkpoint(path, "images", Model("fake-model", "9.9.9")).load()


def test_skips_done_results_and_failure_records(s3: Any, new_bucket: Callable[[str], str],
                                                fake: FakePreprocess) -> None:
    bucket = new_bucket("bf")
    keys = _fill(s3, bucket, 6)
    etag = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"].strip('"') for k in keys}
    s3.put_object(Bucket=fake.results_bucket, Body=b"{}",
                  Key=result_key("", bucket, keys[0], etag[keys[0]], MODEL.name, MODEL.version))
    s3.put_object(Bucket=fake.results_bucket, Body=b"{}",  # an older model version: not done
                  Key=result_key("", bucket, keys[1], etag[keys[1]], MODEL.name, "old"))
    s3.put_object(Bucket=fake.results_bucket, Key=failure_key("", bucket, keys[2], etag[keys[2]]), Body=b"{}")

    dry = _job(s3, bucket, fake, None).run(dry_run=True)
    assert (dry.listed, dry.skipped_results, dry.to_do, dry.processed) == (6, 1, 5, 0)
    assert fake.requests == []
    assert _job(s3, bucket, fake, None, skip_failed=True).run(dry_run=True).to_do == 4

    summary = _job(s3, bucket, fake, None, batch_size=2).run()
    assert (summary.processed, summary.failed, summary.batches) == (5, 0, 3)
    assert sorted(r.key for r in fake.refs_received()) == keys[1:]
    assert all(r.etag == etag[r.key] for r in fake.refs_received())


def test_interrupted_run_resumes_from_checkpoint_without_repeats(
        s3: Any, new_bucket: Callable[[str], str], fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("bf")
    keys = _fill(s3, bucket, 20)
    fake.model_name = "other-model"  # results don't match: only the checkpoint can prevent repeats
    ckpt = tmp_path / "ck.jsonl"
    first = _job(s3, bucket, fake, ckpt, batch_size=3, concurrency=1)

    def stop_after_three(refs: Sequence[ObjectRef], ok: bool) -> None:
        if fake.requests and len(fake.requests) >= 3:
            first.stop.set()

    first.on_batch = stop_after_three
    s1 = first.run()
    assert s1.processed == 9 and s1.batches == 3
    s2 = _job(s3, bucket, fake, ckpt, batch_size=3, concurrency=2).run()
    assert (s2.skipped_checkpoint, s2.processed) == (9, 11)
    received = [r.key for r in fake.refs_received()]
    assert sorted(received) == keys  # every object exactly once


def test_failures_are_counted_not_checkpointed(s3: Any, new_bucket: Callable[[str], str],
                                               fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("bf")
    _fill(s3, bucket, 4)
    fake.fail_status = lambda refs: 503 if any(r.key.startswith("img/001") for r in refs) else None
    s = _job(s3, bucket, fake, tmp_path / "c.jsonl", batch_size=1).run()
    assert (s.processed, s.failed) == (3, 1) and "503" in s.errors[0]
    assert len(Checkpoint(tmp_path / "c.jsonl", bucket, MODEL).load().done) == 3


def test_modified_since_and_prefix(s3: Any, new_bucket: Callable[[str], str], fake: FakePreprocess) -> None:
    bucket = new_bucket("bf")
    _fill(s3, bucket, 2, prefix="a/")
    _fill(s3, bucket, 3, prefix="b/")
    assert _job(s3, bucket, fake, None, prefix="b/").run(dry_run=True).listed == 3
    future = datetime.now(UTC) + timedelta(hours=1)
    assert _job(s3, bucket, fake, None, modified_since=future).run(dry_run=True).listed == 0
    assert parse_time("2026-01-02") == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_cli_end_to_end(s3: Any, seaweed: Any, new_bucket: Callable[[str], str], fake: FakePreprocess,
                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    bucket = new_bucket("bf")
    _fill(s3, bucket, 5)
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, name=MODEL.name, version=MODEL.version)
    common = ["--bucket", bucket, "--results-bucket", fake.results_bucket, "--model-manifest", str(manifest),
              "--checkpoint", str(tmp_path / "ck.jsonl"), "--no-progress"]
    assert main([*common, "--dry-run"]) == 0
    assert "total 5, already done 0 (results 0, checkpoint 0), to do 5" in capsys.readouterr().out
    assert main([*common, "--invoke-url", fake.url, "--batch-size", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "processed 5, skipped 0, failed 0 of 5 listed" in out
    assert json.loads(out.splitlines()[-1])["processed"] == 5
    assert main([*common, "--invoke-url", fake.url]) == 0
    assert "processed 0, skipped 5" in capsys.readouterr().out
    fake.fail_status = lambda refs: 400
    other_model = ["--fresh", "--model-name", "m", "--model-version", "2"]
    assert main([*common, "--invoke-url", fake.url, *other_model]) == 1
    assert main(["--bucket", bucket, "--model-manifest", str(tmp_path / "missing.json")]) == 2


class DetachedFn:
    """Fn's detached mode: acknowledged with `ack` and no body; for some objects the function fails.

    `ack` is 202 (OCI Functions, fnlocal: answered at once, the function runs later) or 200 (a
    self-hosted Fn server: answered after the function ran, its body dropped). `outcome(ref)` says what
    the run leaves behind: "result", "failure" or None (it failed before writing anything, e.g. the
    container died).
    """

    def __init__(self, s3: Any, results: str, outcome: Callable[[ObjectRef], str | None], ack: int = 202) -> None:
        self.s3, self.results, self.outcome, self.ack = s3, results, outcome, ack
        self.calls: list[bool] = []

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        self.calls.append(detached)
        for ref in parse_refs(body, {"content-type": content_type}):
            what = self.outcome(ref)
            if what == "result":
                key = result_key("", ref.bucket, ref.key, ref.etag, MODEL.name, MODEL.version)
            elif what == "failure":
                key = failure_key("", ref.bucket, ref.key, ref.etag)
            else:
                continue
            self.s3.put_object(Bucket=self.results, Key=key, Body=b"{}")
        return InvokeResult(self.ack)


@pytest.mark.parametrize("ack", [202, 200], ids=["oci-or-fnlocal-202", "self-hosted-fn-200-empty"])
def test_detached_entries_are_rechecked_on_resume(s3: Any, new_bucket: Callable[[str], str],
                                                  fake: FakePreprocess, tmp_path: Path, ack: int) -> None:
    bucket = new_bucket("bf")
    keys = _fill(s3, bucket, 10)
    ckpt = tmp_path / "ck.jsonl"
    lost = {keys[1], keys[4], keys[7]}

    def outcome(ref: ObjectRef) -> str | None:
        return None if ref.key in lost else "failure" if ref.key == keys[0] else "result"

    # GIVEN a detached run: every call acknowledged, three of them failed without a trace
    fn = DetachedFn(s3, fake.results_bucket, outcome, ack)
    detached = Backfill(s3, fn, bucket, MODEL, checkpoint=Checkpoint(ckpt, bucket, MODEL).load(),
                        results_bucket=fake.results_bucket, batch_size=3, detached=True, progress=False).run()
    assert detached.processed == 10 and all(fn.calls)
    loaded = Checkpoint(ckpt, bucket, MODEL).load()
    assert len(loaded.submitted) == 10 and loaded.done == set()
    assert '"state": "submitted"' in ckpt.read_text()

    # --trust-checkpoint believes the acknowledgements: nothing is sent
    trusting = _job(s3, bucket, fake, ckpt, trust_checkpoint=True).run(dry_run=True)
    assert (trusting.skipped_checkpoint, trusting.to_do) == (10, 0)

    # WHEN resumed: objects with a result or failure record are skipped, the lost ones are sent again
    resumed = _job(s3, bucket, fake, ckpt, batch_size=2).run()
    assert sorted(r.key for r in fake.refs_received()) == sorted(lost)
    assert (resumed.rechecked, resumed.resent, resumed.skipped_results, resumed.processed) == (10, 3, 7, 3)
    assert "detached calls from the checkpoint: 7 done, 3 without a result yet (sent again)" in \
        resumed.lines(dry_run=False, detached=False)
    # THEN the checkpoint knows all ten are done: a third run looks nothing up and sends nothing
    final = Checkpoint(ckpt, bucket, MODEL).load()
    assert final.submitted == set() and len(final.done) == 10
    again = _job(s3, bucket, fake, ckpt).run()
    assert (again.skipped_checkpoint, again.rechecked, again.processed) == (10, 0, 0)
    assert len(fake.refs_received()) == 3


def test_checkpoint_lines_without_state_are_done(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    ck = Checkpoint(path, "images", MODEL)
    path.write_text(json.dumps(ck.header) + "\n" + json.dumps({"key": "a", "etag": "e"}) + "\n"
                    + json.dumps({"key": "b", "etag": "e", "state": "submitted"}) + "\n"
                    + json.dumps({"key": "c", "etag": "e", "state": "submitted"}) + "\n"
                    + json.dumps({"key": "c", "etag": "e", "state": "done"}) + "\n")
    loaded = ck.load()
    assert loaded.done == {("a", "e"), ("c", "e")} and loaded.submitted == {("b", "e")}


def test_cli_reads_the_functions_environment_names() -> None:
    env = {"INPUT_BUCKET": "photos", "RESULTS_BUCKET": "out", "RESULTS_PREFIX": "r/",
           "VISION_PREPROCESS_URL": "http://fn/invoke/x", "AUTH_TOKEN": "tok",
           "VISION_INPUT_BUCKET": "ignored", "VISION_AUTH_TOKEN": "ignored"}
    args = build_parser(env).parse_args([])
    assert (args.bucket, args.results_bucket, args.results_prefix) == ("photos", "out", "r/")
    assert (args.invoke_url, args.auth_token) == ("http://fn/invoke/x", "tok")
    assert build_parser({}).parse_args([]).bucket == "images"


def test_detached_call_answered_with_a_body_ran_synchronously_and_is_done(
        s3: Any, new_bucket: Callable[[str], str], fake: FakePreprocess, tmp_path: Path) -> None:
    # e.g. --detached against an HTTP trigger or a gateway route: the header is not honoured there, the
    # function answers as for a sync call, and that answer is what a sync run records as done.
    bucket = new_bucket("bf")
    _fill(s3, bucket, 4)
    ckpt = tmp_path / "ck.jsonl"

    class SyncAnyway(DetachedFn):
        def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
            super().invoke(body, content_type, detached)
            return InvokeResult(200, b'{"predictions": []}')

    fn = SyncAnyway(s3, fake.results_bucket, lambda ref: "result")
    Backfill(s3, fn, bucket, MODEL, checkpoint=Checkpoint(ckpt, bucket, MODEL).load(),
             results_bucket=fake.results_bucket, batch_size=2, detached=True, progress=False).run()
    loaded = Checkpoint(ckpt, bucket, MODEL).load()
    assert len(loaded.done) == 4 and loaded.submitted == set()
