"""End to end through the real local stack: SeaweedFS upload → filer webhook → fnlocal (real fdk
processes) → preprocess → predict (real model) → result JSON in SeaweedFS.

One stack per module (start ≈ 2–4 s); each test works under its own key prefix.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest
from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import result_key

from devstack.pipeline import read_manifest, upload_files, wait_for_results
from devstack.ports import free_port
from devstack.seaweedfs import find_free_base
from devstack.stack import LocalStack, StackOptions
from modelbuild.photos import sample_photos, write_jpegs
from triggers.events import oci_object_event, to_body
from triggers.invoker import HttpInvoker
from triggers.watcher import FileSnapshot, Watcher

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_dir: Path):
    data = tmp_path_factory.mktemp("stack")
    options = StackOptions(root=REPO, data_dir=data, s3_base_port=find_free_base(), fn_port=free_port())
    with LocalStack(options) as running:
        yield running


@pytest.fixture(scope="module")
def manifest(model_dir: Path) -> dict:
    return read_manifest(model_dir)


def _results_under(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _wait(client, uploads, manifest, timeout_s=120.0):
    return wait_for_results(
        client, uploads, input_bucket="images", results_bucket="results", results_prefix="",
        model_name=manifest.name, model_version=manifest.version, timeout_s=timeout_s,
    )


def test_uploads_get_exactly_one_result_each_with_the_right_class(stack, manifest, tmp_path):
    client = stack.seaweed.client()
    photos = [p for p in sample_photos() if p.expected_top1]
    assert len(photos) >= 5
    files = write_jpegs(tmp_path, photos)
    not_image = tmp_path / "notes.jpg"
    not_image.write_bytes(b"this is not a JPEG, whatever its name says")
    prefix = f"e2e/{uuid.uuid4().hex[:8]}/"

    uploads = upload_files(client, "images", [*files, not_image], prefix)
    outcomes = {Path(o.upload.key).stem: o for o in _wait(client, uploads, manifest)}

    assert outcomes["notes"].status == "failure"
    assert outcomes["notes"].document["error"]["code"] in {"not_an_image", "unsupported_image"}
    for photo in photos:
        outcome = outcomes[photo.name]
        assert outcome.status == "result", (photo.name, outcome)
        doc = outcome.document
        assert doc["predictions"][0]["index"] in photo.expected_top1, (photo.name, doc["predictions"][:3])
        assert doc["source"]["bucket"] == "images" and doc["source"]["key"] == outcome.upload.key
        assert doc["model"]["name"] == manifest.name and doc["model"]["version"] == manifest.version
    # exactly one document per upload, nothing else
    keys = _results_under(client, "results", f"images/{prefix}")
    assert len(keys) == len(uploads)


def test_duplicate_event_makes_no_second_result(stack, manifest, tmp_path):
    client = stack.seaweed.client()
    [photo] = [p for p in sample_photos() if p.name == "coffee"]
    prefix = f"dup/{uuid.uuid4().hex[:8]}/"
    [upload] = upload_files(client, "images", write_jpegs(tmp_path, [photo]), prefix)
    [first] = _wait(client, [upload], manifest)
    assert first.status == "result"

    # deliver the same event again, twice, straight to preprocess (as an at-least-once source would)
    invoker = HttpInvoker(stack.fnlocal.invoke_url("vision", "preprocess"))
    event = oci_object_event(ObjectRef(bucket="images", key=upload.key, etag=upload.etag))
    for _ in range(2):
        reply = invoker.invoke(to_body(event), "application/json")
        assert reply.status == 200, reply
    rkey = result_key("", "images", upload.key, upload.etag, manifest.name, manifest.version)
    again = json.loads(client.get_object(Bucket="results", Key=rkey)["Body"].read())
    assert again == first.document  # not overwritten
    assert _results_under(client, "results", f"images/{prefix}") == [rkey]


def test_watcher_restart_neither_misses_nor_repeats(stack, manifest, tmp_path):
    client = stack.seaweed.client()
    bucket = f"watched-{uuid.uuid4().hex[:6]}"
    client.create_bucket(Bucket=bucket)
    sent: list[bytes] = []

    class CountingInvoker(HttpInvoker):
        def invoke(self, body, content_type, detached=False):
            sent.append(body)
            return super().invoke(body, content_type, detached)

    invoker = CountingInvoker(stack.fnlocal.invoke_url("vision", "preprocess"))
    snapshot = FileSnapshot(tmp_path / "snapshot.json")

    def watcher() -> Watcher:
        return Watcher(client=client, bucket=bucket, invoker=invoker, snapshot=snapshot, batch_size=4)

    photos = write_jpegs(tmp_path / "p", [p for p in sample_photos() if p.expected_top1][:5])
    first = upload_files(client, bucket, photos[:3], "")
    watcher().poll_once()
    # "restart": a new watcher on the same snapshot, with two more uploads in between
    second = upload_files(client, bucket, photos[3:], "")
    restarted = watcher()
    restarted.poll_once()
    restarted.poll_once()  # nothing new: must send nothing

    outcomes = wait_for_results(
        client, [*first, *second], input_bucket=bucket, results_bucket="results", results_prefix="",
        model_name=manifest.name, model_version=manifest.version, timeout_s=60,
    )
    assert [o.status for o in outcomes] == ["result"] * 5
    sent_keys = [rec["s3"]["object"]["key"] for body in sent for rec in json.loads(body)["Records"]]
    assert sorted(unquote_plus(k) for k in sent_keys) == sorted(u.key for u in [*first, *second])
    assert len(_results_under(client, "results", f"{bucket}/")) == 5


def test_http_trigger_classifies_an_upload_without_storage(stack):
    [photo] = [p for p in sample_photos() if p.name == "chelsea"]
    import io

    buffer = io.BytesIO()
    photo.image().save(buffer, format="JPEG")
    url = stack.fnlocal.trigger_url("vision", "/classify")
    reply = httpx.post(url, files={"image": ("chelsea.jpg", buffer.getvalue(), "image/jpeg")}, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    top = body["results"][0]["predictions"][0] if "results" in body else body["predictions"][0]["top_k"][0]
    assert top["index"] in photo.expected_top1
