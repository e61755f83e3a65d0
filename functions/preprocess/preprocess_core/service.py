"""Orchestration: inputs → bytes → tensors + metadata → one batched predict → per-item answer.

Pure: everything outside (storage, web, predict, clock) comes in through ``Deps``.

Failure policy ("nothing lost": every object of an event ends with a result, a failure record,
or a failed call that its event source delivers again):
- A *permanent* per-object failure (missing object, not an image, truncated, bomb, too large,
  predict rejected the image) gets a failure record (docs/contracts.md §5, conditional put) and the
  other images carry on: one bad record never sinks the batch.
- A *retryable* per-object failure (storage read error, or a failure record that could not be
  written) on a storage-event call (``from_event``) fails the whole call with 502 ``storage_error``
  once the good images have been predicted and recorded; the retry is safe because results and
  failure records are written with a conditional put (done items answer "exists").
- Otherwise storage-event calls answer 200 with a status per item; a predict failure fails the
  whole call. Events with more than ``MAX_IMAGES`` objects are processed in chunks of
  ``MAX_IMAGES`` (one predict call each, tensors released in between).
- A direct request for exactly one image (`{"bucket","key"}`, `{"url"}`, one upload) answers
  with that image's error and status (404, 413, 415, 422, ...).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fnvision_common.access import bearer_matches
from fnvision_common.result_index import FAILURE_SCHEMA, IndexStore, format_time, write_indexed
from fnvision_common.result_keys import (
    ResultKeyError,
    check_bucket_name,
    check_object_key,
    failure_key,
    is_results_location,
)
from fnvision_common.s3client import normalise_etag

from . import decode_guard, images, metadata
from .done import Done, ServedModel, find_done
from .errors import (
    BadEventError,
    ImageError,
    ObjectNotFoundError,
    PreprocessError,
    RecordRefusedError,
    RefusedSourceError,
    StorageError,
    TooLargeError,
    UnauthorizedError,
)
from .events import Ignored, Input, ObjectRef, ParsedRequest, UrlRef
from .fetch_s3 import FetchedObject
from .fetch_url import FetchedUrl
from .predict_client import PredictAnswer
from .settings import Settings

log = logging.getLogger(__name__)


class ObjectStore(Protocol):
    def get(self, bucket: str, key: str, max_bytes: int) -> FetchedObject: ...

    def list_names(self, bucket: str, prefix: str) -> set[str]: ...

    def delete(self, bucket: str, key: str) -> None: ...

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
    served_model: ServedModel = field(default_factory=lambda: ServedModel(ttl=0.0))
    """The model predict answers with (per hot container); ttl 0 turns the duplicate check off."""
    index: IndexStore | None = None
    """Where failure records' result-index entries go (None: records are written without them)."""


@dataclass
class _Item:
    input: Input
    answer: dict[str, Any]
    error: PreprocessError | None = None
    tensor: npt.NDArray[np.uint8] | None = None
    source: dict[str, Any] | None = None


def check_auth(headers: Mapping[str, str], token: str, gateway: bool) -> None:
    """With AUTH_TOKEN set, HTTP-trigger calls must send `Authorization: Bearer <token>`."""
    if token and gateway and not bearer_matches(headers, token):
        raise UnauthorizedError("missing or wrong `Authorization: Bearer` token")


def describe(item: Input) -> dict[str, Any]:
    """How an input is named in the answer."""
    if isinstance(item, ObjectRef):
        return {"bucket": item.bucket, "key": item.key}
    if isinstance(item, UrlRef):
        return {"url": item.url}
    return {"upload": item.name}


def run(request: ParsedRequest, deps: Deps, call_id: str | None) -> dict[str, Any]:
    """Process every input, call predict once per chunk of MAX_IMAGES (or per size cap), answer per item."""
    started = time.perf_counter()
    settings = deps.settings
    ignored = list(request.ignored)
    inputs: list[Input] = []
    for inp in request.inputs:
        if (
            request.from_event
            and isinstance(inp, ObjectRef)
            and is_results_location(inp.bucket, inp.key, settings.results_bucket, settings.results_prefix)
        ):
            ignored.append(Ignored("results_location", inp.event_type, f"{inp.bucket}/{inp.key}"))
            continue
        inputs.append(inp)

    items: list[_Item] = []
    model: dict[str, Any] = {}
    calls = 0
    for start in range(0, len(inputs), settings.max_images):
        chunk = [
            _prepare(inp, deps, call_id, check_done=request.from_event)
            for inp in inputs[start : start + settings.max_images]
        ]
        chunk_model, chunk_calls = _predict(chunk, deps, call_id)
        model, calls = chunk_model or model, calls + chunk_calls
        items.extend(chunk)

    if not request.from_event and len(items) == 1 and items[0].error is not None and not ignored:
        raise items[0].error
    malformed = [it.error for it in items if isinstance(it.error, BadEventError)]
    if items and len(malformed) == len(items):
        # An event whose every object is malformed is a bad event (400): nothing to record or retry.
        raise malformed[0]
    failed = sum(1 for it in items if it.error is not None)
    done = sum(1 for it in items if it.answer.get("status") == "done")
    log.info(
        "preprocess done",
        extra={"images": len(items), "failed": failed, "done": done, "ignored": len(ignored), "predict_calls": calls},
    )
    if request.from_event:
        _fail_if_retryable(items)
    return {
        "call_id": call_id,
        "model": model or None,
        "predictions": [it.answer for it in items],
        "ignored": [i.to_dict() for i in ignored],
        "counts": {
            "images": len(items),
            "ok": len(items) - failed - done,
            "failed": failed,
            "done": done,
            "ignored": len(ignored),
            "predict_calls": calls,
        },
        "timings": {"total_ms": round((time.perf_counter() - started) * 1000, 1)},
    }


def _predict(chunk: list[_Item], deps: Deps, call_id: str | None) -> tuple[dict[str, Any], int]:
    """One batched predict call (split by size inside the client) for the ready items of a chunk."""
    ready = [it for it in chunk if it.tensor is not None]
    if not ready:
        return {}, 0
    batch = np.stack([it.tensor for it in ready if it.tensor is not None])
    for it in ready:
        it.tensor = None
    answer = deps.predictor.predict(batch, [it.source for it in ready], call_id)
    deps.served_model.learn(answer.model)
    for index, (it, prediction) in enumerate(zip(ready, answer.predictions, strict=True)):
        rejected = answer.rejected.get(index)
        if rejected is not None:
            _fail(it, rejected, deps, call_id, stage="predict")
            continue
        result = prediction.get("result")
        if isinstance(result, dict) and result.get("status") == "failed":
            _record_not_written(it, result, deps, call_id)
            continue
        it.answer["status"] = "ok"
        it.answer["top_k"] = prediction.get("top_k", [])
        if result is not None:
            it.answer["result"] = result
    return answer.model, answer.calls


def _record_not_written(item: _Item, result: dict[str, Any], deps: Deps, call_id: str | None) -> None:
    """predict classified the image but could not write its result: retry it, or record why not."""
    given = result.get("error")
    why: dict[str, Any] = given if isinstance(given, dict) else {}
    message = f"predict could not record {result.get('key', '?')}: {why.get('code', '?')}: {why.get('message', '')}"
    if why.get("code") == "record_refused":
        _fail(item, RecordRefusedError(message), deps, call_id, stage="record")
        return
    # storage_unavailable (or anything unknown): not recorded, so the event must come again.
    item.error = StorageError(message)
    item.answer.update(status="failed", error=item.error.detail())


def _fail_if_retryable(items: list[_Item]) -> None:
    """On event calls, fail the call (502) if an object could be lost: a retryable error or no record."""
    lost = [
        it
        for it in items
        if (it.error is not None and it.error.status >= 500)
        or (isinstance(it.answer.get("failure"), dict) and it.answer["failure"].get("status") == "error")
    ]
    if not lost:
        return
    log.error(
        "event call fails so that it is delivered again",
        extra={"lost": [it.answer for it in lost], "images": len(items)},
    )
    first = lost[0].answer
    why = first.get("failure", {}).get("error") or first.get("error") or {}
    raise StorageError(
        f"{len(lost)} of {len(items)} objects could not be read or recorded "
        f"(first: {_name(first)}: {why.get('code', '?')}: {why.get('message', '')}); "
        "the call fails so that the event is delivered again (done objects then answer 'exists')"
    )


def _name(answer: dict[str, Any]) -> str:
    if "bucket" in answer:
        return f"s3://{answer['bucket']}/{answer['key']}"
    return str(answer.get("url") or answer.get("upload") or "?")


def _already_done(ref: ObjectRef, deps: Deps) -> Done | None:
    """The recorded outcome of this object version (done.py), or None: unknown, not done, or no answer."""
    model = deps.served_model.current()
    etag = normalise_etag(ref.etag)
    if model is None or not etag:
        return None
    s = deps.settings
    try:
        return find_done(deps.store, model, s.results_bucket, s.results_prefix, ref.bucket, ref.key, etag)
    except StorageError as exc:  # the check only saves work: without an answer, do the work
        log.warning("duplicate check failed", extra={"why": exc.message})
        return None


def _prepare(inp: Input, deps: Deps, call_id: str | None, *, check_done: bool = False) -> _Item:
    """Fetch and normalise one input; errors are kept on the item (and recorded for objects).

    With ``check_done`` (storage events), an object version whose outcome is already recorded is
    answered from that record (status ``done``) without being fetched, decoded or inferred.
    """
    settings = deps.settings
    item = _Item(input=inp, answer=describe(inp))
    source: dict[str, Any]
    try:
        if isinstance(inp, ObjectRef):
            _check_ref(inp)
            if is_results_location(inp.bucket, inp.key, settings.results_bucket, settings.results_prefix):
                raise RefusedSourceError(f"s3://{inp.bucket}/{inp.key} is in the results area")
            done = _already_done(inp, deps) if check_done else None
            if done is not None:
                item.answer.update(etag=normalise_etag(inp.etag), status="done", **done.to_answer())
                return item
            obj = deps.store.get(inp.bucket, inp.key, settings.max_image_bytes)
            data = obj.data
            source = metadata.source_info(
                bucket=inp.bucket,
                key=inp.key,
                etag=obj.etag or normalise_etag(inp.etag),
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
        permanent = isinstance(exc, (TooLargeError, ObjectNotFoundError))
        if permanent and isinstance(inp, ObjectRef) and normalise_etag(inp.etag):
            # Too many bytes, or no such object version, is permanent: record it (keyed by the
            # event's ETag). Storage errors are not recorded: they fail an event call (retry).
            known = metadata.source_info(
                bucket=inp.bucket,
                key=inp.key,
                etag=normalise_etag(inp.etag),
                size=inp.size,
                event_id=inp.event_id,
                event_time=inp.event_time,
                event_type=inp.event_type,
                origin=inp.origin,
            )
            item.answer["etag"] = known["etag"]
            item.source = {"metadata": {"source": known}}
        _fail(item, exc, deps, call_id, stage="fetch")
        return item

    try:
        img = images.open_image(data, settings.max_pixels, settings.max_decoded_bytes)
        results = (settings.results_bucket, settings.results_prefix)
        cost = images.decode_cost(img, data)
        with decode_guard.guarded(deps.store, results, source, cost, settings.max_decoded_bytes, call_id):
            info = metadata.image_info(img, data, images.is_animated(img))
            exif = metadata.read_exif(img)
            prepared = images.to_tensor(img, settings.model, max_decoded_bytes=settings.max_decoded_bytes)
    except StorageError as exc:  # the guard's marker could not be written: retry later, don't risk it
        _fail(item, exc, deps, call_id, stage="decode")
        return item
    except (ImageError, TooLargeError) as exc:
        item.source = {"metadata": {"source": source}}
        _fail(item, exc, deps, call_id, stage="decode")
        return item

    meta = {"source": source, "image": info, "exif": exif.to_dict(settings.store_gps)}
    if isinstance(inp, ObjectRef) and source.get("etag"):
        item.source = {"bucket": inp.bucket, "key": inp.key, "etag": source["etag"], "metadata": meta}
    else:
        item.source = {"metadata": meta}
    item.tensor = prepared.tensor
    return item


def _check_ref(ref: ObjectRef) -> None:
    """Refuse, as bad input, a reference no store can hold (before it becomes a retryable storage error)."""
    try:
        check_bucket_name(ref.bucket)
    except ResultKeyError as exc:
        raise BadEventError(str(exc)) from exc
    try:
        check_object_key(ref.key)
    except ResultKeyError as exc:
        raise BadEventError(f"the event names no possible object in {ref.bucket!r}: {exc}") from exc


def _fail(item: _Item, exc: PreprocessError, deps: Deps, call_id: str | None, *, stage: str) -> None:
    """Mark an item failed; objects with a known version get their failure record."""
    item.error = exc
    item.tensor = None
    item.answer.update(status="failed", error=exc.detail())
    meta = (item.source or {}).get("metadata") or {}
    source = meta.get("source") or {}
    if isinstance(item.input, ObjectRef) and source.get("etag"):
        item.answer["failure"] = _record_failure(deps, source, exc, call_id, stage=stage)


def _record_failure(
    deps: Deps, source: dict[str, Any], exc: PreprocessError, call_id: str | None, *, stage: str
) -> dict[str, Any]:
    """Write the failure record once per object version; never raises (status "error" instead)."""
    settings = deps.settings
    bucket = settings.results_bucket
    key = failure_key(settings.results_prefix, source["bucket"], source["key"], source["etag"])

    def build(recorded_at: datetime) -> dict[str, Any]:
        return {
            "schema": FAILURE_SCHEMA,
            "source": source,
            "error": exc.detail(),
            "stage": stage,
            "call_id": call_id,
            "recorded_at": format_time(recorded_at),
        }

    try:
        if deps.index is None:
            status = deps.store.put_if_absent(bucket, key, build(deps.now()))
        else:
            created = write_indexed(
                deps.index, bucket, settings.results_prefix, key, build, deps.now(),
                lambda document: deps.store.put_if_absent(bucket, key, dict(document)) == "created",
            )
            status = "created" if created else "exists"
    except RecordRefusedError as err:
        # Permanent: a retry would be refused the same way. Logged as an error, not retried for ever.
        log.error("failure record refused by the store", extra={"key": key, "why": err.message})
        return {"bucket": settings.results_bucket, "key": key, "status": "refused", "error": err.detail()}
    except StorageError as err:
        log.error("failure record not written", extra={"key": key, "why": err.message})
        return {"bucket": settings.results_bucket, "key": key, "status": "error", "error": err.detail()}
    return {"bucket": settings.results_bucket, "key": key, "status": status}
