"""In-memory stand-ins for what preprocess's service needs (``preprocess_core.deps``), and helpers.

Unit tests only: the store, the URL fetcher and predict as fakes, ``deps`` with test settings,
S3 ``Records`` for keys, and ``run`` (parse with the settings' limits and results area, then run).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from preprocess_core import service
from preprocess_core.deps import Deps
from preprocess_core.errors import ObjectNotFoundError, PredictRejectedError, StorageError
from preprocess_core.events import parse_request
from preprocess_core.fetch_s3 import FetchedObject
from preprocess_core.fetch_url import FetchedUrl
from preprocess_core.predict_client import PredictAnswer
from preprocess_core.settings import ModelInput, Settings

from tests.data import preprocess_images as gen

CAT = gen.encode(gen.chelsea(), "JPEG", exif=gen.exif_bytes(gps=(10.5, 20.25)))
MODEL = ModelInput.from_size(224)


class MemoryStore:
    """In-memory ObjectStore; `broken` keys fail to read, `writes_fail` makes every put fail (502)."""

    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects
        self.written: dict[tuple[str, str], dict[str, Any]] = {}
        self.broken: set[str] = set()
        self.writes_fail = False

    def get(self, bucket: str, key: str, max_bytes: int) -> FetchedObject:
        if key in self.broken:
            raise StorageError(f"cannot read s3://{bucket}/{key}: connection reset")
        if (bucket, key) not in self.objects:
            raise ObjectNotFoundError(f"{bucket}/{key}")
        data = self.objects[(bucket, key)]
        return FetchedObject(data, f"etag-{key}", len(data), "image/jpeg")

    def delete(self, bucket: str, key: str) -> None:
        self.written.pop((bucket, key), None)

    def list_names(self, bucket: str, prefix: str) -> set[str]:
        return {k[len(prefix) :] for b, k in self.written if b == bucket and k.startswith(prefix)}

    def put_if_absent(self, bucket: str, key: str, document: dict[str, Any]) -> str:
        if self.writes_fail:
            raise StorageError(f"cannot write s3://{bucket}/{key}: 503 SlowDown")
        if (bucket, key) in self.written:
            return "exists"
        self.written[(bucket, key)] = document
        return "created"


class FakeFetcher:
    """Every URL answers the cat photo."""

    def fetch(self, url: str, max_bytes: int) -> FetchedUrl:
        return FetchedUrl(CAT, url, url, "image/jpeg", 0)


class FakePredictor:
    """Answers like predict (a result for every stored object), or fails / rejects every image; records the calls."""

    def __init__(self, fail: Exception | None = None, reject: PredictRejectedError | None = None) -> None:
        self.calls: list[tuple[tuple[int, ...], list[Any], str | None]] = []
        self.fail = fail
        self.reject = reject

    def predict(self, batch: np.ndarray, sources: list[Any], call_id: str | None) -> PredictAnswer:
        if self.fail:
            raise self.fail
        assert batch.dtype == np.uint8
        self.calls.append((batch.shape, sources, call_id))
        if self.reject:
            return PredictAnswer([{} for _ in sources], rejected=dict.fromkeys(range(len(sources)), self.reject))
        preds = [{"top_k": [{"index": 281, "label": "tabby", "score": 0.5}]} for _ in sources]
        for p, s in zip(preds, sources, strict=True):
            if s and "bucket" in s:
                p["result"] = {"bucket": "results", "key": f"{s['key']}/r.json", "status": "created"}
        return PredictAnswer(preds, {"name": "m", "version": "1"})


class WritesFailFor(FakePredictor):
    """predict classified everything but could not write the result of the named keys."""

    def __init__(self, failed: dict[str, str]) -> None:
        super().__init__()
        self.failed = failed

    def predict(self, batch: np.ndarray, sources: list[Any], call_id: str | None) -> PredictAnswer:
        answer = super().predict(batch, sources, call_id)
        for p, s in zip(answer.predictions, sources, strict=True):
            if s and s["key"] in self.failed:
                code = self.failed[s["key"]]
                error = {"code": code, "message": "x"}
                p["result"] = {"bucket": "results", "key": "k", "status": "failed", "error": error}
        return answer


def deps(objects: dict[tuple[str, str], bytes], predictor: FakePredictor | None = None, **settings: Any) -> Deps:
    return Deps(
        settings=replace(Settings(model=MODEL), **settings),
        store=MemoryStore(objects),
        fetcher=FakeFetcher(),
        predictor=predictor or FakePredictor(),
        now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def records(*keys: str) -> bytes:
    recs = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "images"}, "object": {"key": k, "eTag": f"etag-{k}"}},
        }
        for k in keys
    ]
    return json.dumps({"Records": recs}).encode()


def run(body: bytes, d: Deps, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse ``body`` with the settings' limits and results area (as ``edge.handle`` does), then run it."""
    s = d.settings
    results = (s.results_bucket, s.results_prefix)
    headers = headers or {"content-type": "application/json"}
    return service.run(parse_request(body, headers, max_images=s.max_images, results=results), d, "call-1")


def store_of(d: Deps) -> MemoryStore:
    assert isinstance(d.store, MemoryStore)
    return d.store
