"""predict against a real SeaweedFS: idempotent results, s3:// models with sha256 checks, storage errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fnvision_common import oip as wire

from modelbuild import photos
from tests.fdkproc import FdkProcess

REPO = Path(__file__).resolve().parents[2]
FUNC = REPO / "functions" / "predict" / "func.py"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image(model_dir: Path) -> np.ndarray:
    (chelsea,) = photos.sample_photos(["chelsea"])
    return photos.preprocess(chelsea.image())


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def oip_body(images: np.ndarray, sources: list[Any], top_k: int = 3) -> tuple[bytes, dict[str, str]]:
    """What preprocess sends for a batch (fnvision_common.oip.encode_request)."""
    body, head_len = wire.encode_request(images, sources, input_name="images", top_k=top_k)
    return body, {wire.HEADER_LENGTH: str(head_len)}


def native(reply: Any) -> dict[str, Any]:
    doc = wire.read_json(reply.body, reply.headers.get("inference-header-content-length"))
    return json.loads(doc["parameters"][wire.NATIVE_PARAMETER])


@pytest.fixture
def results_fn(seaweed: Any, new_bucket: Any) -> Iterator[tuple[FdkProcess, str]]:
    bucket = new_bucket("results")
    env = {**seaweed.env(), "RESULTS_BUCKET": bucket, "RESULTS_PREFIX": "v1/"}
    with FdkProcess(FUNC, env=env) as proc:
        yield proc, bucket


def test_result_recorded_once_and_duplicate_reports_exists(
    results_fn: tuple[FdkProcess, str], s3: Any, image: np.ndarray
) -> None:
    fn, bucket = results_fn
    metadata = {
        "source": {"size": 12345, "content_type": "image/jpeg", "event_id": "ev-1"},
        "image": {"format": "JPEG", "width": 451, "height": 300, "sha256": "ab" * 32},
        "exif": {"make": None},
    }
    sources = [{"bucket": "images", "key": "cats/chelsea.jpg", "etag": '"etag-1"', "metadata": metadata}]
    body, headers = oip_body(image[np.newaxis], sources)
    first = fn.call(body, headers, call_id="01FIRST")
    key = "v1/images/cats/chelsea.jpg/etag-1/efficientnet-lite0@1.0.0.json"
    stored = s3.get_object(Bucket=bucket, Key=key)
    original, original_etag = stored["Body"].read(), stored["ETag"]
    index = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="v1/~index/")["Contents"])
    assert len(index) == 1 + 1 + 3 + 1 + 2  # claim, all, 3 labels, model, bucket + folder "cats/"

    second = fn.call(body, headers, call_id="01SECOND")
    a, b = native(first), native(second)
    assert a["predictions"][0]["result"] == {"bucket": bucket, "key": key, "status": "created"}
    assert b["predictions"][0]["result"] == {"bucket": bucket, "key": key, "status": "exists"}
    again = s3.get_object(Bucket=bucket, Key=key)
    assert again["Body"].read() == original and again["ETag"] == original_etag
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="v1/images/")["Contents"]  # the documents (not the index)
    assert [o["Key"] for o in listed] == [key], "a duplicate must never make a second document"
    after = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="v1/~index/")["Contents"])
    assert after == index, "nor a second index entry"

    doc = json.loads(original)
    assert doc["schema"] == "fn-vision/result@1" and doc["call_id"] == "01FIRST"
    assert doc["source"] == {
        **metadata["source"],
        "bucket": "images",
        "key": "cats/chelsea.jpg",
        "etag": "etag-1",
    }
    assert doc["image"] == metadata["image"] and doc["exif"] == {"make": None}
    assert doc["predictions"][0]["index"] in {281, 282, 285} and len(doc["predictions"]) == 3
    assert doc["model"]["name"] == "efficientnet-lite0" and doc["model"]["engine"] == "litert"
    assert doc["recorded_at"].endswith("Z") and "inference_ms" in doc["timings"]


def _upload_model(s3: Any, bucket: str, prefix: str, model_dir: Path, corrupt: str | None = None) -> None:
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            rel = path.relative_to(model_dir).as_posix()
            data = path.read_bytes()
            if rel == corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0x01])
            s3.put_object(Bucket=bucket, Key=prefix + rel, Body=data)


def test_model_from_s3_is_downloaded_and_verified(
    seaweed: Any, s3: Any, new_bucket: Any, model_dir: Path, image: np.ndarray, tmp_path: Path
) -> None:
    bucket = new_bucket("models")
    _upload_model(s3, bucket, "lite0/1.0.0/", model_dir)
    env = {**seaweed.env(), "MODEL_URI": f"s3://{bucket}/lite0/1.0.0/", "MODEL_CACHE_DIR": str(tmp_path)}
    with FdkProcess(FUNC, env=env) as fn:
        reply = fn.call(npy(image), {"Content-Type": "application/x-npy"})
        hot = fn.call(npy(image), {"Content-Type": "application/x-npy"})
        logs = fn.json_logs()
    assert reply.status == 200, reply.body
    assert reply.json()["predictions"][0]["top_k"][0]["index"] in {281, 282, 285}
    assert reply.json()["cold_start"] is True and hot.json()["cold_start"] is False
    assert [e["msg"] for e in logs].count("model downloaded") == 1
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.iterdir()) == [
        "efficientnet_lite0.tflite",
        "labels.json",
        "manifest.json",
    ]


def test_savedmodel_tree_download_matches_manifest(
    seaweed: Any, s3: Any, new_bucket: Any, model_dir: Path, tmp_path: Path
) -> None:
    from fnvision_common.s3client import S3Settings, make_client
    from predict_core.manifest import artifact_for, parse, verify
    from predict_core.model_download import download_model

    bucket = new_bucket("models")
    _upload_model(s3, bucket, "m/", model_dir)
    client = make_client(S3Settings.from_env(seaweed.env()))
    local = download_model(f"s3://{bucket}/m", "tensorflow", str(tmp_path), client)
    manifest = parse((local / "manifest.json").read_bytes())
    artifact = artifact_for(manifest, "tensorflow")
    verify(local / artifact.path, artifact.sha256, "savedmodel")  # raises on mismatch
    assert not (local / "efficientnet_lite0.tflite").exists()


@pytest.mark.parametrize("corrupt", ["efficientnet_lite0.tflite", "labels.json"])
def test_corrupted_artifact_in_s3_is_refused(
    seaweed: Any, s3: Any, new_bucket: Any, model_dir: Path, image: np.ndarray, tmp_path: Path, corrupt: str
) -> None:
    bucket = new_bucket("models")
    _upload_model(s3, bucket, "lite0/", model_dir, corrupt=corrupt)
    env = {**seaweed.env(), "MODEL_URI": f"s3://{bucket}/lite0/", "MODEL_CACHE_DIR": str(tmp_path)}
    with FdkProcess(FUNC, env=env) as fn:
        reply = fn.call(npy(image), {"Content-Type": "application/x-npy"}, gateway=True)
        assert fn.alive()
    assert reply.headers["fn-http-status"] == "500"
    assert reply.json()["error"]["code"] == "model_corrupt"


def test_missing_s3_model_is_unavailable(seaweed: Any, new_bucket: Any, image: np.ndarray, tmp_path: Path) -> None:
    env = {
        **seaweed.env(),
        "MODEL_URI": f"s3://{new_bucket('models')}/nothing/",
        "MODEL_CACHE_DIR": str(tmp_path),
    }
    with FdkProcess(FUNC, env=env) as fn:
        reply = fn.call(npy(image), {"Content-Type": "application/x-npy"})
    assert reply.status == 502 and reply.json()["error"]["code"] == "model_unavailable"


def test_storage_refusing_the_write_is_storage_unavailable(seaweed: Any, image: np.ndarray) -> None:
    # (A missing results bucket is no test here: SeaweedFS's -s3.autoCreateBucket defaults to true.)
    env = {**seaweed.env(), "S3_MAX_ATTEMPTS": "1", "S3_SECRET_ACCESS_KEY": "wrong"}
    body, headers = oip_body(image[np.newaxis], [{"bucket": "images", "key": "x.jpg", "etag": "e"}])
    with FdkProcess(FUNC, env=env) as fn:
        invoke = fn.call(body, headers)
        trigger = fn.call(body, headers, gateway=True)
    assert invoke.status == 502 and invoke.json()["error"]["code"] == "storage_unavailable"
    assert "SignatureDoesNotMatch" in invoke.json()["error"]["message"] or "Access" in invoke.json()["error"]["message"]
    assert trigger.status == 200 and trigger.headers["fn-http-status"] == "502"


def test_a_write_the_store_refuses_is_answered_per_image_not_retried(
    seaweed: Any, new_bucket: Any, s3: Any, image: np.ndarray
) -> None:
    # A results prefix of 1,005 bytes: every result key is over the 1,024-byte limit, and
    # SeaweedFS refuses each write (KeyTooLongError, 400). A retry would be refused the same way,
    # so the call answers 200 with each image's outcome instead of a 502 that loops for ever.
    bucket = new_bucket("refused")
    env = {**seaweed.env(), "RESULTS_BUCKET": bucket, "RESULTS_PREFIX": ("p" * 200 + "/") * 5}
    sources = [{"bucket": "images", "key": k, "etag": f"e-{i}"} for i, k in enumerate(["a.jpg", "b.jpg"])]
    with FdkProcess(FUNC, env=env) as fn:
        reply = fn.call(*oip_body(np.stack([image] * 2), sources))
    assert reply.status == 200, reply.body
    results = [p["result"] for p in native(reply)["predictions"]]
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all(r["error"]["code"] == "record_refused" and "KeyTooLong" in r["error"]["message"] for r in results)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
