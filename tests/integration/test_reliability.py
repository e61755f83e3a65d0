"""Legal-but-extreme input through the real chain (fnlocal: real fdk processes, real model, SeaweedFS).

No poison loops: every object of an event ends with a result or a failure record, and the call's
status asks the event source to retry only what a retry can fix.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fnvision_common.manifest import Manifest
from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import LONG_FOLDER, MAX_KEY_BYTES, result_key

from tests.data import preprocess_images as gen
from tests.integration.chain import repo_app
from triggers.events import s3_records, to_body

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAT_CLASSES = {281, 282, 285}
JPEG = gen.encode(gen.chelsea(), "JPEG", quality=90)


@pytest.fixture(scope="module")
def fl(seaweed: Any, model_dir: Path) -> Iterator[Any]:
    with repo_app(seaweed, model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def manifest(model_dir: Path) -> Manifest:
    return Manifest.read(model_dir)


def s3_event(bucket: str, keys: list[str], etags: dict[str, str] | None = None) -> bytes:
    """An S3 notification for ``keys`` (with their ETags when given, as the stores send them)."""
    return to_body(s3_records(ObjectRef(bucket, key, (etags or {}).get(key, "")) for key in keys))


def long_key(total: int) -> str:
    """A legal key of ``total`` bytes: folders of 200 bytes (SeaweedFS allows 255 per path element)."""
    parts, left = [], total - len("x.jpg")
    while left > 0:
        part = "d" * min(200, left - 1) + "/"
        parts.append(part)
        left -= len(part)
    key = "".join(parts) + "x.jpg"
    assert len(key.encode()) == total
    return key


def invoke(fl: Any, http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post(fl.invoke_url("vision", "preprocess"), content=body, headers={"Content-Type": "application/json"})


def test_a_key_near_the_limit_is_recorded_and_does_not_sink_its_batch(
    fl: Any, http: httpx.Client, s3: Any, new_bucket: Any, manifest: Manifest
) -> None:
    bucket = new_bucket("long")
    keys = ["a.jpg", long_key(1000), "b.jpg", "c.jpg"]
    etags = {}
    for key in keys:
        etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=JPEG)["ETag"].strip('"')

    for delivery in range(2):  # at-least-once: the second delivery changes nothing
        reply = invoke(fl, http, s3_event(bucket, keys))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["counts"]["ok"] == 4, body
        for key, item in zip(keys, body["predictions"], strict=True):
            want = result_key("", bucket, key, etags[key], manifest.name, manifest.version)
            assert item["result"]["key"] == want
            assert item["result"]["status"] == ("created" if delivery == 0 else "exists")
            assert int(item["top_k"][0]["index"]) in CAT_CLASSES

    long_result = body["predictions"][1]["result"]["key"]
    assert long_result.startswith(f"{LONG_FOLDER}/{bucket}/") and len(long_result.encode()) <= MAX_KEY_BYTES
    doc = json.loads(s3.get_object(Bucket="results", Key=long_result)["Body"].read())
    assert doc["source"]["key"] == keys[1], "the document keeps the full source key"


@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_a_key_no_store_can_hold_is_a_bad_event(fl: Any, http: httpx.Client, new_bucket: Any, gateway: bool) -> None:
    bucket = new_bucket("bad")
    body = json.dumps({"bucket": bucket, "key": "k" * 2000}).encode()
    event = s3_event(bucket, ["k" * 2000])
    for payload in (body, event):
        if gateway:
            reply = http.post(fl.trigger_url("vision", "/preprocess"), content=payload,
                              headers={"Content-Type": "application/json"})
            assert reply.status_code == 400, reply.text
        else:
            reply = invoke(fl, http, payload)
            assert reply.status_code == 200, reply.text  # /invoke: client errors travel in the body
        error = reply.json()["error"]
        assert error["code"] == "bad_event" and "1024" in error["message"]


@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_a_lone_surrogate_is_a_bad_event(fl: Any, http: httpx.Client, gateway: bool) -> None:
    raw = b'{"bucket": "images", "key": "photo\\ud800.jpg"}'
    url = fl.trigger_url("vision", "/preprocess") if gateway else fl.invoke_url("vision", "preprocess")
    reply = http.post(url, content=raw, headers={"Content-Type": "application/json"})
    assert reply.status_code == (400 if gateway else 200), reply.text
    assert reply.json()["error"]["code"] == "bad_event"
    # A proper surrogate pair is a real character, not an error.
    pair = b'{"bucket": "images", "key": "photo\\ud83d\\ude00-missing.jpg"}'
    assert http.post(url, content=pair, headers={"Content-Type": "application/json"}).json()["error"]["code"] == (
        "object_not_found"
    )


def test_one_malformed_record_among_good_ones_fails_alone(
    fl: Any, http: httpx.Client, s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("mixed")
    s3.put_object(Bucket=bucket, Key="good.jpg", Body=JPEG)
    reply = invoke(fl, http, s3_event(bucket, ["good.jpg", "k" * 2000]))
    assert reply.status_code == 200, reply.text
    good, bad = reply.json()["predictions"]
    assert good["status"] == "ok" and good["result"]["status"] == "created"
    assert bad["status"] == "failed" and bad["error"]["code"] == "bad_event" and "failure" not in bad


def test_a_progressive_photo_too_big_to_decode_gets_a_failure_record_not_a_dead_container(
    fl: Any, http: httpx.Client, s3: Any, new_bucket: Any
) -> None:
    # 7200x5400 progressive 4:4:4, under MAX_PIXELS and MAX_IMAGE_BYTES: decoding it takes 258 MiB
    # peak (preprocess has 256 MB), so before the coefficient buffer was budgeted every delivery
    # killed a container.
    bucket = new_bucket("killer")
    keys = ["a.jpg", "huge-progressive.jpg", "b.jpg"]
    s3.put_object(Bucket=bucket, Key=keys[0], Body=JPEG)
    s3.put_object(Bucket=bucket, Key=keys[1], Body=gen.huge_progressive_jpeg())
    s3.put_object(Bucket=bucket, Key=keys[2], Body=JPEG)
    reply = invoke(fl, http, s3_event(bucket, keys))
    assert reply.status_code == 200, reply.text
    container = reply.headers["fn-local-container"]
    good_a, killer, good_b = reply.json()["predictions"]
    assert good_a["result"]["status"] == good_b["result"]["status"] == "created"
    assert killer["status"] == "failed" and killer["error"]["code"] == "image_too_large"
    assert "DCT coefficients" in killer["error"]["message"]
    record = json.loads(s3.get_object(Bucket="results", Key=killer["failure"]["key"])["Body"].read())
    assert record["error"]["code"] == "image_too_large" and record["stage"] == "decode"
    again = invoke(fl, http, s3_event(bucket, keys))
    assert again.status_code == 200 and again.headers["fn-local-container"] == container, "the container lived on"


def predict_calls(fl: Any) -> int:
    (fn,) = [f for f in fl.status()["functions"] if f["name"] == "predict"]
    return sum(int(c["calls"]) for c in fn["containers"])


def test_duplicate_deliveries_are_answered_from_the_records_without_inference(
    fl: Any, http: httpx.Client, s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("dups")
    keys = [f"p{i}.jpg" for i in range(5)] + ["not-an-image.jpg"]
    for key in keys[:-1]:
        s3.put_object(Bucket=bucket, Key=key, Body=JPEG)
    s3.put_object(Bucket=bucket, Key=keys[-1], Body=b"plain text")
    etags = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"].strip('"') for k in keys}

    first = invoke(fl, http, s3_event(bucket, keys, etags)).json()
    assert first["counts"]["ok"] == 5 and first["counts"]["failed"] == 1
    calls = predict_calls(fl)
    for _ in range(3):
        again = invoke(fl, http, s3_event(bucket, keys, etags)).json()
        assert again["counts"] == {**again["counts"], "done": 6, "ok": 0, "failed": 0, "predict_calls": 0}
        assert [p["status"] for p in again["predictions"]] == ["done"] * 6
        assert [p.get("result", p.get("failure"))["key"] for p in again["predictions"]] == [
            p.get("result", p.get("failure"))["key"] for p in first["predictions"]
        ]
    assert predict_calls(fl) == calls, "no duplicate reached predict"


def test_an_image_that_kills_its_container_ends_as_a_failure_record_not_a_loop(
    seaweed: Any, model_dir: Path, s3: Any, new_bucket: Any, http: httpx.Client
) -> None:
    # A budget configured far above the function's memory lets a 10000x10000 PNG (400 MB decoded)
    # through; preprocess has 256 MB, so each decode gets the container killed (fnlocal, like Fn's
    # cgroup). The event source delivers it again each time; after two kills it is not decoded again.
    from PIL import Image

    bucket = new_bucket("poison")
    buffer = io.BytesIO()
    Image.new("RGB", (10_000, 10_000), (200, 120, 40)).save(buffer, "PNG", compress_level=1)
    s3.put_object(Bucket=bucket, Key="killer.png", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="good.jpg", Body=JPEG)
    with repo_app(seaweed, model_dir, MAX_DECODED_BYTES="1000000000", MAX_PIXELS="200000000") as running:
        statuses = []
        for _ in range(4):
            reply = invoke(running, http, s3_event(bucket, ["killer.png", "good.jpg"]))
            statuses.append(reply.status_code)
            if reply.status_code == 200:
                break
    assert statuses == [502, 502, 200], statuses
    killer, good = reply.json()["predictions"]
    assert killer["status"] == "failed" and killer["error"]["code"] == "decode_killed"
    assert good["result"]["status"] == "created"
    record = json.loads(s3.get_object(Bucket="results", Key=killer["failure"]["key"])["Body"].read())
    assert record["error"]["code"] == "decode_killed"
    folder = killer["failure"]["key"].rsplit("/", 1)[0] + "/"
    names = [o["Key"][len(folder):] for o in s3.list_objects_v2(Bucket="results", Prefix=folder)["Contents"]]
    assert names == ["attempt-1.json", "attempt-2.json", "failure.json"], "the two kills stay on record"
    good_folder = good["result"]["key"].rsplit("/", 1)[0] + "/"
    assert len(s3.list_objects_v2(Bucket="results", Prefix=good_folder)["Contents"]) == 1, "no marker for a JPEG"
