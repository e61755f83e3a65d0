"""The SeaweedFS filer webhook fires for real uploads: exactly one CloudEvent per completed object."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.seaweedfs import SeaweedFS, find_free_base
from triggers.fakefn import FakePreprocess
from triggers.filer_adapter import FilerAdapter
from triggers.invoker import HttpInvoker

pytestmark = pytest.mark.integration

KEYS = ["plain.jpg", "with space.jpg", "a+b.jpg", "été/日本 photo.jpg", "deep/er/path/x.jpg"]


class Stack:
    def __init__(self, weed: SeaweedFS, adapter: FilerAdapter, fake: FakePreprocess) -> None:
        self.weed, self.adapter, self.fake = weed, adapter, fake
        self.s3 = weed.client()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("filer")
    weed = SeaweedFS(data_dir=root / "data", base_port=find_free_base(), buckets=("images", "results"),
                     workdir=root / "work")
    with FakePreprocess(weed.client()) as fake:  # client is lazy: weed starts below
        with FilerAdapter(HttpInvoker(fake.url, backoff_s=0.05), client=weed.client(),
                          buckets={"images"}) as adapter:
            adapter.write_config(root / "work", backoff_seconds=1, max_backoff_seconds=2)
            with weed:
                yield Stack(weed, adapter, fake)


def _wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _events_for(fake: FakePreprocess, prefix: str) -> list[dict[str, Any]]:
    return [r["event"] for r in fake.requests if r["event"]["data"]["resourceName"].startswith(prefix)]


def test_one_cloudevent_per_uploaded_object(stack: Stack) -> None:
    prefix = "t1/"
    etags = {}
    for key in KEYS:
        etags[prefix + key] = stack.s3.put_object(Bucket="images", Key=prefix + key, Body=key.encode() * 3,
                                                  ContentType="image/jpeg")["ETag"].strip('"')
    _wait_for(lambda: len(_events_for(stack.fake, prefix)) >= len(KEYS))
    time.sleep(1.0)  # give a duplicate the chance to show up
    events = _events_for(stack.fake, prefix)
    assert sorted(e["data"]["resourceName"] for e in events) == sorted(etags)
    for event in events:
        key = event["data"]["resourceName"]
        assert event["eventType"] == "com.oraclecloud.objectstorage.createobject"
        assert event["cloudEventsVersion"] == "0.1"
        assert event["data"]["additionalDetails"]["bucketName"] == "images"
        assert event["data"]["additionalDetails"]["eTag"] == etags[key]
        head = stack.s3.head_object(Bucket="images", Key=key)["ETag"].strip('"')
        assert head == etags[key]


def test_multipart_overwrite_delete_and_results_bucket(stack: Stack) -> None:
    s3, prefix = stack.s3, "t2/"
    mp = s3.create_multipart_upload(Bucket="images", Key=prefix + "big.bin")
    parts = []
    for n, body in enumerate([b"a" * (5 * 1024 * 1024), b"b" * 100], start=1):
        part = s3.upload_part(Bucket="images", Key=prefix + "big.bin", UploadId=mp["UploadId"],
                              PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": part["ETag"]})
    s3.complete_multipart_upload(Bucket="images", Key=prefix + "big.bin", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": parts})
    big_etag = s3.head_object(Bucket="images", Key=prefix + "big.bin")["ETag"].strip('"')
    assert big_etag.endswith("-2")

    first = s3.put_object(Bucket="images", Key=prefix + "x.jpg", Body=b"v1")["ETag"].strip('"')
    _wait_for(lambda: len(_events_for(stack.fake, prefix + "x.jpg")) == 1)
    second = s3.put_object(Bucket="images", Key=prefix + "x.jpg", Body=b"v2")["ETag"].strip('"')
    s3.put_object(Bucket="images", Key=prefix + "gone.jpg", Body=b"g")
    s3.delete_object(Bucket="images", Key=prefix + "gone.jpg")
    s3.put_object(Bucket="results", Key=prefix + "r.json", Body=b"{}")
    _wait_for(lambda: len(_events_for(stack.fake, prefix)) >= 4)
    time.sleep(1.0)

    events = _events_for(stack.fake, prefix)
    seen = sorted((e["data"]["resourceName"], e["data"]["additionalDetails"]["eTag"], e["eventType"][-12:])
                  for e in events)
    assert seen == sorted([
        (prefix + "big.bin", big_etag, "createobject"),
        (prefix + "gone.jpg", hashlib.md5(b"g").hexdigest(), "createobject"),  # the delete adds nothing
        (prefix + "x.jpg", first, "createobject"),
        (prefix + "x.jpg", second, "updateobject"),
    ])
    assert not any(".uploads" in r["event"]["data"]["resourceName"] for r in stack.fake.requests)


def test_written_config(stack: Stack, tmp_path: Path) -> None:
    text = (Path(stack.weed.workdir or "") / "notification.toml").read_text()
    assert stack.adapter.url in text and '"/buckets/images/"' in text


def test_watcher_beside_the_adapter_resends_nothing_the_adapter_delivered(stack: Stack, tmp_path: Path) -> None:
    from triggers.watcher import FileSnapshot, Watcher

    watcher = Watcher(stack.s3, "images", HttpInvoker(stack.fake.url), FileSnapshot(tmp_path / "snap.json"),
                      prefix="t3/")
    stack.adapter.on_delivered = watcher.mark_delivered
    try:
        for i in range(5):
            stack.s3.put_object(Bucket="images", Key=f"t3/{i}.jpg", Body=b"%d" % i)
        _wait_for(lambda: len(_events_for(stack.fake, "t3/")) == 5)
        # marks are in memory (no write per webhook call) until a flush or the next poll
        _wait_for(lambda: watcher.flush() is not None and len(FileSnapshot(tmp_path / "snap.json").load()) == 5)
        stats = watcher.poll_once()
        assert (stats.listed, stats.sent) == (5, 0)
    finally:
        stack.adapter.on_delivered = None
