"""Watcher snapshot logic against the session's real SeaweedFS and the fake preprocess endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fnvision_common.objects import ObjectRef

from triggers.fakefn import FakePreprocess
from triggers.invoker import HttpInvoker
from triggers.watcher import FileSnapshot, ObjectSnapshot, Watcher


@pytest.fixture
def fake(s3: Any, new_bucket: Callable[[str], str]) -> Iterator[FakePreprocess]:
    with FakePreprocess(s3, results_bucket=new_bucket("res")) as f:
        yield f


def _watcher(s3: Any, bucket: str, fake: FakePreprocess, snap: Path, **kw: Any) -> Watcher:
    inv = HttpInvoker(fake.url, max_attempts=2, backoff_s=0.01)
    return Watcher(s3, bucket, inv, FileSnapshot(snap), results_bucket=fake.results_bucket, **kw)


def _etag(s3: Any, bucket: str, key: str) -> str:
    return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def test_new_changed_removed_and_nothing_twice(s3: Any, new_bucket: Callable[[str], str],
                                               fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    for key in ("a.jpg", "b c.jpg", "d/e+f.jpg"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    w = _watcher(s3, bucket, fake, tmp_path / "snap.json", batch_size=2)

    stats = w.poll_once()
    assert (stats.listed, stats.new, stats.sent, stats.batches) == (3, 3, 3, 2)
    assert sorted(r.key for r in fake.refs_received()) == ["a.jpg", "b c.jpg", "d/e+f.jpg"]
    assert all(r.etag == _etag(s3, bucket, r.key) for r in fake.refs_received())

    assert w.poll_once().sent == 0  # nothing new

    s3.put_object(Bucket=bucket, Key="a.jpg", Body=b"changed")  # new version
    s3.delete_object(Bucket=bucket, Key="b c.jpg")
    stats = w.poll_once()
    assert (stats.new, stats.changed, stats.removed, stats.sent) == (0, 1, 1, 1)
    assert fake.refs_received()[-1] == ObjectRef(bucket, "a.jpg", _etag(s3, bucket, "a.jpg"), 7)

    saved = json.loads((tmp_path / "snap.json").read_text())["objects"]
    assert saved == {"a.jpg": _etag(s3, bucket, "a.jpg"), "d/e+f.jpg": _etag(s3, bucket, "d/e+f.jpg")}


def test_failed_batches_do_not_advance_the_snapshot(s3: Any, new_bucket: Callable[[str], str],
                                                   fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x%d" % i)
    fake.fail_status = lambda refs: 503 if any(r.key == "k3" for r in refs) else None
    w = _watcher(s3, bucket, fake, tmp_path / "snap.json", batch_size=2)
    stats = w.poll_once()
    assert (stats.sent, stats.failed) == (3, 2)  # batches k0,k1 | k2,k3 (fails) | k4
    assert set(FileSnapshot(tmp_path / "snap.json").load()) == {"k0", "k1", "k4"}

    fake.fail_status = None
    stats = w.poll_once()  # the failed batch is retried, nothing else
    assert (stats.sent, stats.failed) == (2, 0)
    assert {r.key for r in fake.created} == {f"k{i}" for i in range(5)}


def test_restart_resumes_from_the_persisted_snapshot(s3: Any, new_bucket: Callable[[str], str],
                                                     fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    s3.put_object(Bucket=bucket, Key="one", Body=b"1")
    _watcher(s3, bucket, fake, tmp_path / "snap.json").poll_once()
    s3.put_object(Bucket=bucket, Key="two", Body=b"2")  # arrives while "down"
    stats = _watcher(s3, bucket, fake, tmp_path / "snap.json").poll_once()  # a new process
    assert stats.sent == 1
    assert [r.key for r in fake.refs_received()] == ["one", "two"]


def test_prefix_results_area_and_folder_markers_are_skipped(s3: Any, new_bucket: Callable[[str], str],
                                                            fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    for key in ("inbox/a.jpg", "inbox/dir/", "other/b.jpg", "inbox/results/x.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"z")
    w = _watcher(s3, bucket, fake, tmp_path / "s.json", prefix="inbox/")
    w.results_bucket, w.results_prefix = bucket, "inbox/results/"
    w.poll_once()
    assert [r.key for r in fake.refs_received()] == ["inbox/a.jpg"]


def test_emit_existing_false_only_remembers_the_first_listing(s3: Any, new_bucket: Callable[[str], str],
                                                              fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    s3.put_object(Bucket=bucket, Key="old", Body=b"o")
    w = _watcher(s3, bucket, fake, tmp_path / "s.json", emit_existing=False)
    assert w.poll_once().sent == 0
    s3.put_object(Bucket=bucket, Key="new", Body=b"n")
    assert w.poll_once().sent == 1
    assert [r.key for r in fake.refs_received()] == ["new"]


def test_oci_format_sends_one_cloudevent_per_object(s3: Any, new_bucket: Callable[[str], str],
                                                    fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    for key in ("x", "y"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    _watcher(s3, bucket, fake, tmp_path / "s.json", event_format="oci").poll_once()
    assert [req["event"]["cloudEventsVersion"] for req in fake.requests] == ["0.1", "0.1"]


def test_object_snapshot_round_trip(s3: Any, new_bucket: Callable[[str], str]) -> None:
    store = ObjectSnapshot(s3, new_bucket("res"), "_watch/images.json")
    assert store.load() == {}
    store.save({"a b/ü+.jpg": "e1"})
    assert store.load() == {"a b/ü+.jpg": "e1"}


def test_file_snapshot_write_is_atomic(tmp_path: Path) -> None:
    store = FileSnapshot(tmp_path / "sub" / "snap.json")
    store.save({"a": "1"})
    store.save({"a": "2", "b": "3"})
    assert store.load() == {"a": "2", "b": "3"}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["snap.json"]


def test_cli_once(s3: Any, seaweed: Any, new_bucket: Callable[[str], str], fake: FakePreprocess,
                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from triggers.watcher import main

    bucket = new_bucket("w")
    s3.put_object(Bucket=bucket, Key="a b.jpg", Body=b"1")
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RESULTS_BUCKET", fake.results_bucket)
    args = ["--bucket", bucket, "--invoke-url", fake.url, "--snapshot", str(tmp_path / "s.json"), "--once"]
    assert main(args) == 0 and main(args) == 0
    assert [r.key for r in fake.refs_received()] == ["a b.jpg"]


class CountingSnapshot(FileSnapshot):
    """A FileSnapshot that counts its writes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saves = 0

    def save(self, snapshot: dict[str, str]) -> None:
        self.saves += 1
        super().save(snapshot)


def _refs(s3: Any, bucket: str, n: int) -> list[ObjectRef]:
    refs = []
    for i in range(n):
        key = f"adapter/{i:03d}.jpg"
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        refs.append(ObjectRef(bucket, key, _etag(s3, bucket, key)))
    return refs


def test_mark_delivered_is_batched_and_survives_a_clean_restart(s3: Any, new_bucket: Callable[[str], str],
                                                                fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    snap = CountingSnapshot(tmp_path / "snap.json")
    w = Watcher(s3, bucket, HttpInvoker(fake.url, backoff_s=0.01), snap, results_bucket=fake.results_bucket)
    refs = _refs(s3, bucket, 40)
    # the adapter marks 40 objects one by one (the webhook path): no write per object
    for ref in refs:
        w.mark_delivered([ref])
    assert snap.saves == 0
    stats = w.poll_once()  # the next poll persists the marks once and sends nothing
    assert (stats.listed, stats.sent) == (40, 0) and snap.saves == 1
    assert fake.requests == []

    more = _refs(s3, bucket, 45)[40:]
    w.mark_delivered(more)
    assert w.flush() is True and w.flush() is False  # one write, then nothing left to write
    restarted = Watcher(s3, bucket, HttpInvoker(fake.url, backoff_s=0.01), FileSnapshot(snap.path),
                        results_bucket=fake.results_bucket)
    assert restarted.poll_once().sent == 0  # nothing repeated after a restart


def test_run_writes_marks_between_polls_and_at_stop(s3: Any, new_bucket: Callable[[str], str],
                                                    fake: FakePreprocess, tmp_path: Path) -> None:
    import time

    bucket = new_bucket("w")
    snap = CountingSnapshot(tmp_path / "snap.json")
    w = Watcher(s3, bucket, HttpInvoker(fake.url, backoff_s=0.01), snap, results_bucket=fake.results_bucket,
                persist_every_s=0.05)
    [ref] = _refs(s3, bucket, 1)
    handle = w.start(interval=3600)  # one poll now, then none for an hour
    w.mark_delivered([ref])
    deadline = time.monotonic() + 5
    while FileSnapshot(snap.path).load() != {ref.key: ref.etag}:  # written without waiting for a poll
        assert time.monotonic() < deadline, "mark not persisted by run()"
        time.sleep(0.01)
    assert snap.saves <= 2 and fake.requests == []
    [late] = _refs(s3, bucket, 2)[1:]
    w.mark_delivered([late])
    handle.stop()
    assert FileSnapshot(snap.path).load() == {ref.key: ref.etag, late.key: late.etag}


def test_crash_before_the_write_only_repeats_harmlessly(s3: Any, new_bucket: Callable[[str], str],
                                                        fake: FakePreprocess, tmp_path: Path) -> None:
    bucket = new_bucket("w")
    refs = _refs(s3, bucket, 3)
    first = _watcher(s3, bucket, fake, tmp_path / "snap.json")
    first.poll_once()  # delivers the 3 objects: each gets its result
    assert len(fake.created) == 3
    s3.put_object(Bucket=bucket, Key="adapter/new.jpg", Body=b"new")
    new = ObjectRef(bucket, "adapter/new.jpg", _etag(s3, bucket, "adapter/new.jpg"))
    fake.handle(json.dumps({"bucket": bucket, "key": new.key, "etag": new.etag}).encode(), {})  # the adapter
    first.mark_delivered([new])
    # crash here: the mark was never written
    again = _watcher(s3, bucket, fake, tmp_path / "snap.json")
    assert again.poll_once().sent == 1  # the marked object is sent once more: nothing is missed ...
    assert [r.key for r in fake.existed] == [new.key]  # ... and the duplicate wrote nothing
    assert sorted(r.key for r in fake.created) == sorted([*(r.key for r in refs), new.key])


def test_what_another_source_has_in_flight_is_skipped_not_lost(s3: Any, new_bucket: Callable[[str], str],
                                                                fake: FakePreprocess, tmp_path: Path) -> None:
    from triggers.inflight import InFlight

    bucket = new_bucket("w")
    for key in ("a.jpg", "b.jpg"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    ledger = InFlight()
    w = _watcher(s3, bucket, fake, tmp_path / "snap.json", in_flight=ledger)
    adapters = ObjectRef(bucket, "a.jpg", _etag(s3, bucket, "a.jpg"))
    assert ledger.claim(adapters)  # the filer adapter is delivering a.jpg right now

    stats = w.poll_once()
    assert (stats.sent, stats.in_flight) == (1, 1) and [r.key for r in fake.refs_received()] == ["b.jpg"]
    assert len(ledger) == 1, "the watcher released its own claim after the batch"

    ledger.release([adapters])  # the adapter's delivery failed and was given up: not marked delivered
    stats = w.poll_once()
    assert (stats.sent, stats.in_flight) == (1, 0) and fake.refs_received()[-1].key == "a.jpg"

    s3.put_object(Bucket=bucket, Key="c.jpg", Body=b"c")
    c = ObjectRef(bucket, "c.jpg", _etag(s3, bucket, "c.jpg"))
    ledger.claim(c)
    w.mark_delivered([c])  # the adapter delivered it (marks, then releases)
    ledger.release([c])
    assert w.poll_once().sent == 0 and len(fake.refs_received()) == 2
