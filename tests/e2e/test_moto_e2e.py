"""The AWS notification path end to end: moto S3 → SNS (http) → SnsForwarder → the REAL preprocess
and predict (fnlocal, real model) → result documents.

Design (the simplest honest one): the whole pipeline uses moto as its object store. The stack's
function config (`StackOptions.extra_config`, which wins over the SeaweedFS settings) points the
functions' S3_* settings at the moto server, so preprocess fetches the uploaded object from moto and
predict writes its result into moto's `results` bucket. Nothing is copied or rewritten: the body
preprocess receives is the SNS envelope moto produced, forwarded unchanged, and the object it
classifies is the one moto stored. The stack's SeaweedFS still starts (the stack always runs it)
but is not used here; `source="none"` keeps the stack's own event sources out of the way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fnvision_common.result_keys import result_key

from devstack.pipeline import read_manifest
from devstack.ports import free_port
from devstack.seaweedfs import find_free_base
from devstack.stack import LocalStack, StackOptions
from modelbuild.photos import sample_photos, write_jpegs
from triggers.invoker import HttpInvoker
from triggers.moto_notify import REGION, MotoServer, SnsForwarder, connect_s3_to_sns

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
BUCKET = "aws-images"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket="results")
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, moto: MotoServer) -> Iterator[LocalStack]:
    data = tmp_path_factory.mktemp("stack")
    (data / "weed-workdir").mkdir()  # devstack only creates it for source="filer"
    moto_s3 = {"S3_ENDPOINT_URL": moto.endpoint_url, "S3_REGION": REGION, "S3_ADDRESSING_STYLE": "path",
               "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "INPUT_BUCKET": BUCKET}
    options = StackOptions(root=REPO, data_dir=data, s3_base_port=find_free_base(), fn_port=free_port(),
                           source="none", extra_config=moto_s3)
    with LocalStack(options) as running:
        yield running


def _wait_for(s3: Any, keys: list[str], timeout_s: float = 120.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(keys):
        for key in keys:
            if key not in found:
                try:
                    found[key] = json.loads(s3.get_object(Bucket="results", Key=key)["Body"].read())
                except s3.exceptions.NoSuchKey:
                    pass
        assert time.monotonic() < deadline, f"only {len(found)} of {len(keys)} results"
        time.sleep(0.1)
    return found


def test_moto_sns_notifications_classified_by_the_real_functions(stack: LocalStack, moto: MotoServer,
                                                                 model_dir: Path, tmp_path: Path) -> None:
    manifest = read_manifest(model_dir)
    s3 = moto.client("s3")
    photos = [p for p in sample_photos() if p.expected_top1][:4]
    files = write_jpegs(tmp_path, photos)
    keys = ["plain.jpg", "in/with space.jpg", "a+b/c+d.jpg", "été/日本 photo.jpg"]
    forwarder = SnsForwarder(HttpInvoker(stack.fnlocal.invoke_url("vision", "preprocess"))).start()
    try:
        connect_s3_to_sns(moto, BUCKET, forwarder.url)
        etags = {key: s3.put_object(Bucket=BUCKET, Key=key, Body=f.read_bytes(), ContentType="image/jpeg")
                 ["ETag"].strip('"') for key, f in zip(keys, files, strict=True)}
        want = {result_key("", BUCKET, k, etags[k], manifest.name, manifest.version): k for k in keys}
        docs = _wait_for(s3, list(want))
    finally:
        forwarder.stop()
    assert forwarder.forwarded == len(keys) + 1  # + moto's s3:TestEvent, which preprocess acknowledges
    for rkey, doc in docs.items():
        key = want[rkey]
        photo = photos[keys.index(key)]
        assert (doc["source"]["bucket"], doc["source"]["key"], doc["source"]["etag"]) == (BUCKET, key, etags[key])
        assert doc["predictions"][0]["index"] in (photo.expected_top1 or set()), (key, doc["predictions"][:3])
    # exactly one result document per upload, nothing else in the results bucket
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="results", Prefix=f"{BUCKET}/").get("Contents", [])]
    assert sorted(listed) == sorted(want)
