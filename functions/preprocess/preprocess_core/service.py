"""Orchestration: inputs → bytes → tensors + metadata → one batched predict → per-item answer.

Pure: everything outside (storage, web, predict, clock) comes in through ``Deps``.

Failure policy:
- An object that cannot be decoded (not an image, truncated, bomb, too large) gets a failure
  record (docs/contracts.md §5, conditional put) and the other images carry on: one bad record
  never sinks the batch.
- Storage-event calls (``from_event``) always answer 200 with a status per item; only a predict
  failure fails the whole call (so webhook senders retry).
- A direct request for exactly one image (`{"bucket","key"}`, `{"url"}`, one upload) answers
  with that image's error and status (404, 413, 415, 422, ...).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import images, metadata
from .errors import (
    ImageError,
    PreprocessError,
    RefusedSourceError,
    StorageError,
    TooLargeError,
    UnauthorizedError,
)
from .events import Ignored, Input, ObjectRef, ParsedRequest, UrlRef
from .fetch_s3 import FetchedObject
from .fetch_url import FetchedUrl
from .predict_client import PredictAnswer
from .result_keys import failure_key, is_results_location
from .settings import Settings

log = logging.getLogger(__name__)
FAILURE_SCHEMA = "fn-vision/failure@1"


class ObjectStore(Protocol):
    def get(self, bucket: str, key: str, max_bytes: int) -> FetchedObject: ...

    def put_if_absent(self, bucket: str, key: str, document: dict[str, Any]) -> str: ...


class Fetcher(Protocol):
    def fetch(self, url: str, max_bytes: int) -> FetchedUrl: ...


class Predictor(Protocol):
    def predict(
        self, batch: npt.NDArray[np.uint8], sources: list[dict[str, Any] | None], call_id: str | None
    ) -> PredictAnswer: ...


@dataclass
class Deps:
    """What the service needs from the outside world."""

    settings: Settings
    store: ObjectStore
    fetcher: Fetcher
    predictor: Predictor
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class _Item:
    input: Input
    answer: dict[str, Any]
    error: PreprocessError | None = None
    tensor: npt.NDArray[np.uint8] | None = None
    source: dict[str, Any] | None = None


def check_auth(headers: Mapping[str, str], token: str, gateway: bool) -> None:
    """With AUTH_TOKEN set, HTTP-trigger calls must send `Authorization: Bearer <token>`."""
    if not token or not gateway:
        return
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise UnauthorizedError("missing or wrong `Authorization: Bearer` token")


def describe(item: Input) -> dict[str, Any]:
    """How an input is named in the answer."""
    if isinstance(item, ObjectRef):
        return {"bucket": item.bucket, "key": item.key}
    if isinstance(item, UrlRef):
        return {"url": item.url}
    return {"upload": item.name}


def run(request: ParsedRequest, deps: Deps, call_id: str | None) -> dict[str, Any]:
    """Process every input, call predict once (or a few times for big batches), answer per item."""
    started = time.perf_counter()
    settings = deps.settings
    items: list[_Item] = []
    ignored = list(request.ignored)
    for inp in request.inputs:
        if isinstance(inp, ObjectRef) and is_results_location(
            inp.bucket, inp.key, settings.results_bucket, settings.results_prefix
        ):
            if request.from_event:
                ignored.append(Ignored("results_location", inp.event_type, f"{inp.bucket}/{inp.key}"))
                continue
        items.append(_prepare(inp, deps, call_id))

    ready = [it for it in items if it.tensor is not None]
    model: dict[str, Any] = {}
    calls = 0
    if ready:
        batch = np.stack([it.tensor for it in ready if it.tensor is not None])
        answer = deps.predictor.predict(batch, [it.source for it in ready], call_id)
        model, calls = answer.model, answer.calls
        for it, prediction in zip(ready, answer.predictions, strict=True):
            it.answer["status"] = "ok"
            it.answer["top_k"] = prediction.get("top_k", [])
            if "result" in prediction:
                it.answer["result"] = prediction["result"]
            it.tensor = None

    if not request.from_event and len(items) == 1 and items[0].error is not None and not ignored:
        raise items[0].error
    failed = sum(1 for it in items if it.error is not None)
    log.info(
        "preprocess done",
        extra={"images": len(items), "failed": failed, "ignored": len(ignored), "predict_calls": calls},
    )
    return {
        "call_id": call_id,
        "model": model or None,
        "predictions": [it.answer for it in items],
        "ignored": [i.to_dict() for i in ignored],
        "counts": {
            "images": len(items),
            "ok": len(ready),
            "failed": failed,
            "ignored": len(ignored),
            "predict_calls": calls,
        },
        "timings": {"total_ms": round((time.perf_counter() - started) * 1000, 1)},
    }


def _prepare(inp: Input, deps: Deps, call_id: str | None) -> _Item:
    """Fetch and normalise one input; errors are kept on the item (and recorded for objects)."""
    settings = deps.settings
    item = _Item(input=inp, answer=describe(inp))
    source: dict[str, Any]
    try:
        if isinstance(inp, ObjectRef):
            if is_results_location(inp.bucket, inp.key, settings.results_bucket, settings.results_prefix):
                raise RefusedSourceError(f"s3://{inp.bucket}/{inp.key} is in the results area")
            obj = deps.store.get(inp.bucket, inp.key, settings.max_image_bytes)
            data = obj.data
            source = metadata.source_info(
                bucket=inp.bucket,
                key=inp.key,
                etag=obj.etag or inp.etag.strip('"'),
                size=obj.size,
                content_type=obj.content_type or inp.content_type,
                event_id=inp.event_id,
                event_time=inp.event_time,
                event_type=inp.event_type,
                origin=inp.origin,
            )
            item.answer["etag"] = source["etag"]
        elif isinstance(inp, UrlRef):
            got = deps.fetcher.fetch(inp.url, settings.max_image_bytes)
            data = got.data
            source = metadata.source_info(
                url=inp.url,
                final_url=got.final_url if got.final_url != inp.url else None,
                size=len(data),
                content_type=got.content_type,
                origin="url",
            )
        else:
            data = inp.data
            if len(data) > settings.max_image_bytes:
                raise TooLargeError(f"upload {inp.name!r} is over the cap of {settings.max_image_bytes} bytes")
            source = metadata.source_info(
                upload=inp.name, size=len(data), content_type=inp.content_type, origin="upload"
            )
    except PreprocessError as exc:
        item.error = exc
        item.answer.update(status="failed", error=exc.to_dict())
        if isinstance(exc, TooLargeError) and isinstance(inp, ObjectRef) and inp.etag:
            # Too many bytes is a permanent property of this object version: record it.
            failed = metadata.source_info(
                bucket=inp.bucket,
                key=inp.key,
                etag=inp.etag.strip('"'),
                size=inp.size,
                event_id=inp.event_id,
                event_time=inp.event_time,
                event_type=inp.event_type,
                origin=inp.origin,
            )
            item.answer["failure"] = _record_failure(deps, failed, exc, call_id)
        return item

    try:
        img = images.open_image(data, settings.max_pixels)
        info = metadata.image_info(img, data, images.is_animated(img))
        exif = metadata.read_exif(img)
        prepared = images.to_tensor(img, settings.model)
    except (ImageError, TooLargeError) as exc:
        item.error = exc
        item.answer.update(status="failed", error=exc.to_dict())
        if isinstance(inp, ObjectRef) and source.get("etag"):
            item.answer["failure"] = _record_failure(deps, source, exc, call_id)
        return item

    meta = {"source": source, "image": info, "exif": exif.to_dict(settings.store_gps)}
    if isinstance(inp, ObjectRef) and source.get("etag"):
        item.source = {"bucket": inp.bucket, "key": inp.key, "etag": source["etag"], "metadata": meta}
    else:
        item.source = {"metadata": meta}
    item.tensor = prepared.tensor
    return item


def _record_failure(deps: Deps, source: dict[str, Any], exc: PreprocessError, call_id: str | None) -> dict[str, Any]:
    """Write the failure record once per object version; never raises."""
    settings = deps.settings
    key = failure_key(settings.results_prefix, source["bucket"], source["key"], source["etag"])
    document = {
        "schema": FAILURE_SCHEMA,
        "source": source,
        "error": exc.to_dict(),
        "stage": "decode",
        "call_id": call_id,
        "recorded_at": deps.now().isoformat().replace("+00:00", "Z"),
    }
    try:
        status = deps.store.put_if_absent(settings.results_bucket, key, document)
    except StorageError as err:
        log.error("failure record not written", extra={"key": key, "why": err.message})
        return {"bucket": settings.results_bucket, "key": key, "status": "error", "error": err.to_dict()}
    return {"bucket": settings.results_bucket, "key": key, "status": status}
