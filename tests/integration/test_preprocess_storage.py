"""preprocess against a real SeaweedFS: object fetch with odd keys, byte cap, failure records."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fnvision_common.s3client import S3Settings
from preprocess_core import service
from preprocess_core.deps import Deps
from preprocess_core.errors import ObjectNotFoundError, RefusedSourceError, TooLargeError
from preprocess_core.events import parse_request
from preprocess_core.fetch_s3 import S3Store
from preprocess_core.fetch_url import UrlFetcher
from preprocess_core.predict_client import PredictAnswer
from preprocess_core.settings import ModelInput, Settings

from tests.data import preprocess_images as gen

pytestmark = pytest.mark.integration

SETTINGS = Settings(model=ModelInput.from_size(224))
KEYS = ["plain.jpg", "in/my cat.jpg", "a+b.jpg", "ünï/猫 photo.jpg", "x/%2F/100%.jpg"]


@pytest.fixture
def store(seaweed: Any) -> S3Store:
    return S3Store(S3Settings.from_env(seaweed.env()))


@pytest.mark.parametrize("key", KEYS)
def test_get_odd_keys(store: S3Store, s3: Any, new_bucket: Any, key: str) -> None:
    bucket = new_bucket("img")
    s3.put_object(Bucket=bucket, Key=key, Body=b"data-" + key.encode(), ContentType="image/jpeg")
    got = store.get(bucket, key, 1000)
    assert got.data == b"data-" + key.encode() and got.etag and '"' not in got.etag
    assert got.content_type == "image/jpeg" and got.size == len(got.data)


def test_missing_too_large_and_results_area(store: S3Store, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("img")
    with pytest.raises(ObjectNotFoundError):
        store.get(bucket, "nope.jpg", 1000)
    s3.put_object(Bucket=bucket, Key="big.jpg", Body=b"\x00" * 5000)
    with pytest.raises(TooLargeError):
        store.get(bucket, "big.jpg", 4999)
    # The results area is refused where the request is parsed (admission), before the store is asked
    # (which would answer object_not_found).
    request = parse_request(b'{"bucket": "results", "key": "anything.json"}', {}, results=("results", ""))
    deps = Deps(settings=SETTINGS, store=store, fetcher=UrlFetcher(), predictor=CountingPredictor())
    with pytest.raises(RefusedSourceError):
        service.run(request, deps, "c0")


def test_put_if_absent_never_overwrites(store: S3Store, s3: Any) -> None:
    key = f"test/{np.random.default_rng().integers(1 << 30)}/failure.json"
    assert store.put_if_absent("results", key, {"n": 1}) == "created"
    assert store.put_if_absent("results", key, {"n": 2}) == "exists"
    assert json.loads(s3.get_object(Bucket="results", Key=key)["Body"].read()) == {"n": 1}


class CountingPredictor:
    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def predict(self, batch: np.ndarray, sources: list[Any], call_id: str | None) -> PredictAnswer:
        self.calls.append(sources)
        return PredictAnswer([{"top_k": [{"index": 1}]} for _ in sources], {"name": "fake"})


def test_event_batch_with_a_bad_object_writes_its_failure_record(store: S3Store, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("img")
    keys = {"in/a cat.jpg": gen.rotated_chelsea_jpeg(), "in/notes+1.txt": b"not an image", "in/c.webp": gen.webp()}
    for key, body in keys.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    # Records as moto/MinIO send them: form-encoded keys with %2F.
    from urllib.parse import quote_plus

    records = [
        {
            "eventSource": "minio:s3",
            "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(k, safe="")}},
        }
        for k in keys
    ]
    predictor = CountingPredictor()
    deps = Deps(settings=SETTINGS, store=store, fetcher=UrlFetcher(), predictor=predictor)
    out = service.run(
        parse_request(json.dumps({"Records": records}).encode(), {"content-type": "application/json"}), deps, "c1"
    )
    assert len(predictor.calls) == 1 and [s["key"] for s in predictor.calls[0]] == ["in/a cat.jpg", "in/c.webp"]
    bad = out["predictions"][1]
    assert bad["status"] == "failed" and bad["failure"]["status"] == "created"
    doc = json.loads(s3.get_object(Bucket="results", Key=bad["failure"]["key"])["Body"].read())
    assert doc["error"]["code"] == "not_an_image" and doc["source"]["key"] == "in/notes+1.txt"
    assert bad["failure"]["key"] == f"{bucket}/in/notes+1.txt/{bad['etag']}/failure.json"
