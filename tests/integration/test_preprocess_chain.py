"""The full chain through fnlocal (real fdk processes): preprocess → predict (real model) → results
in a real SeaweedFS. A photo stored rotated with EXIF orientation must still be a cat.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from tests.data import preprocess_images as gen
from tests.integration.chain import repo_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(scope="module")
def fl(seaweed: Any, model_dir: Path) -> Iterator[Any]:
    with repo_app(seaweed, model_dir) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as client:
        yield client


def records(bucket: str, keys: list[str]) -> bytes:
    recs = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "eventTime": "2026-01-01T00:00:00.000Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(k, safe="/")}},
        }
        for k in keys
    ]
    return json.dumps({"Records": recs}).encode()


def top1(item: dict[str, Any]) -> int:
    return int(item["top_k"][0]["index"])


def test_event_batch_rotated_cat_one_predict_call_and_a_failure_record(
    fl: Any, http: httpx.Client, s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("chain")
    objects = {
        "in/rotated cat.jpg": gen.rotated_chelsea_jpeg(),
        "in/notes+1.jpg": b"this is not a JPEG, whatever its name says",
        "in/cat.webp": gen.webp(),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    reply = http.post(
        fl.invoke_url("vision", "preprocess"),
        content=records(bucket, list(objects)),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["counts"] == {"images": 3, "ok": 2, "failed": 1, "done": 0, "ignored": 0, "predict_calls": 1}
    rotated, bad, webp = body["predictions"]
    assert top1(rotated) in CAT_CLASSES, rotated["top_k"]
    assert top1(webp) in CAT_CLASSES
    assert bad["status"] == "failed" and bad["error"]["code"] == "not_an_image"

    # predict recorded both results with preprocess's metadata; preprocess recorded the failure.
    doc = json.loads(s3.get_object(Bucket="results", Key=rotated["result"]["key"])["Body"].read())
    assert doc["source"]["key"] == "in/rotated cat.jpg" and doc["source"]["bucket"] == bucket
    assert doc["exif"]["orientation"] == 6 and doc["exif"]["gps"] is None
    assert doc["image"]["format"] == "JPEG" and (doc["image"]["width"], doc["image"]["height"]) == (300, 451)
    assert doc["predictions"][0]["index"] in CAT_CLASSES
    failure = json.loads(s3.get_object(Bucket="results", Key=bad["failure"]["key"])["Body"].read())
    assert failure["schema"] == "fn-vision/failure@1" and failure["error"]["code"] == "not_an_image"

    # At-least-once delivery: the same event again changes nothing.
    again = http.post(
        fl.invoke_url("vision", "preprocess"),
        content=records(bucket, list(objects)),
        headers={"Content-Type": "application/json"},
    ).json()
    assert [p.get("result", p.get("failure"))["status"] for p in again["predictions"]] == ["exists"] * 3


def test_trigger_multipart_upload_of_a_rotated_photo(fl: Any, http: httpx.Client) -> None:
    files = [
        ("image", ("rotated.jpg", gen.rotated_chelsea_jpeg(), "image/jpeg")),
        ("image", ("progressive.jpg", gen.progressive_jpeg(), "image/jpeg")),
    ]
    reply = http.post(fl.trigger_url("vision", "/classify"), files=files)
    assert reply.status_code == 200, reply.text
    preds = reply.json()["predictions"]
    assert [p["upload"] for p in preds] == ["rotated.jpg", "progressive.jpg"]
    assert all(top1(p) in CAT_CLASSES for p in preds) and "result" not in preds[0]


def test_trigger_errors_have_real_statuses(fl: Any, http: httpx.Client, new_bucket: Any) -> None:
    url = fl.trigger_url("vision", "/classify")
    assert http.post(url, content=b"nope", headers={"Content-Type": "image/png"}).status_code == 415
    missing = http.post(url, json={"bucket": new_bucket("empty"), "key": "missing.jpg"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "object_not_found"
    refused = http.post(url, json={"url": "http://169.254.169.254/latest/meta-data/"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "refused_url"
