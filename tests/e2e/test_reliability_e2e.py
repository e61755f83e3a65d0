"""One bad object never sinks its batch, with the bucket watcher as the only event source.

Before the reliability fixes, the watcher re-sent the same failing batch every poll: 5 of 8 good
objects uploaded beside a long-key object had no result after 25 s. Here the watcher batches a
1,000-byte key, a progressive photo too big to decode and a text file with eight good photos, and
every object ends with its own outcome, on the first delivery.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from fnvision_common.s3client import normalise_etag

from devstack.pipeline import Upload, read_manifest, wait_for_results
from devstack.ports import free_port
from devstack.seaweedfs import find_free_base
from devstack.stack import LocalStack, StackOptions
from tests.data import preprocess_images as gen

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def test_watcher_batch_with_bad_objects_records_every_object_once(tmp_path: Path, model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    options = StackOptions(root=REPO, data_dir=tmp_path, s3_base_port=find_free_base(), fn_port=free_port(),
                           source="watcher", watch_interval_s=0.5)
    prefix = f"watch/{uuid.uuid4().hex[:8]}/"
    long_key = prefix + ("d" * 199 + "/") * 4 + "long.jpg"
    good = gen.encode(gen.chelsea(), "JPEG", quality=90)
    bodies = {**{f"{prefix}good-{i}.jpg": good for i in range(8)}, long_key: good,
              f"{prefix}huge-progressive.jpg": gen.huge_progressive_jpeg(),
              f"{prefix}notes.jpg": b"plain text"}
    with LocalStack(options) as stack:
        client = stack.seaweed.client()
        uploads = []
        for key, body in bodies.items():
            etag = normalise_etag(client.put_object(Bucket="images", Key=key, Body=body)["ETag"])
            uploads.append(Upload(key=key, etag=etag, uploaded_at=time.monotonic()))
        outcomes = {o.upload.key: o for o in wait_for_results(
            client, uploads, input_bucket="images", results_bucket="results", results_prefix="",
            model_name=manifest.name, model_version=manifest.version, timeout_s=60)}
        polls_failed = stack.watcher.poll_once().failed
    assert {k: o.status for k, o in outcomes.items()} == {
        **{k: "result" for k in bodies if "good" in k or k == long_key},
        f"{prefix}huge-progressive.jpg": "failure",
        f"{prefix}notes.jpg": "failure",
    }
    assert outcomes[long_key].document["source"]["key"] == long_key
    assert outcomes[f"{prefix}huge-progressive.jpg"].document["error"]["code"] == "image_too_large"
    assert polls_failed == 0, "nothing left for the watcher to retry"
