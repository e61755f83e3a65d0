"""One predict call, independent of the fdk: bytes + headers in, bytes + headers + status out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fnvision_common import fnedge
from fnvision_common.fnedge import Reply
from fnvision_common.result_index import EntryObject, IndexStore

from . import codecs
from .codecs.base import DecodedRequest, Source
from .errors import InvalidParameterError, PredictError, StorageUnavailableError
from .model import LoadedModel
from .results import FAILED, ResultStore, build_document, record
from .settings import Settings
from .tensors import to_batch
from .topk import check_k, top_k

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    """What a call needs from the container: settings, the model getter and the result store getter."""

    settings: Settings
    get_model: Callable[[], tuple[LoadedModel, bool]]
    """Return the model and whether this call loaded it (cold)."""
    get_store: Callable[[], ResultStore]
    """Return the result store. Its S3 client is built at cold start when storage is configured (func.py),
    else on first use, so a function without storage configuration never imports boto3."""
    clock: Callable[[], float] = time.perf_counter
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    get_index: Callable[[], IndexStore | None] = lambda: None
    """Return the store of the result index (None: documents are written without index entries)."""
    index_run: Callable[[Callable[[EntryObject], bool], Iterable[EntryObject]], Iterator[bool]] = map
    """Maps one record's entry writes (func.py: a small thread pool's ``map``, so they go in parallel)."""


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 3)


def error_reply(exc: PredictError) -> Reply:
    """Return the JSON error body of contracts.md §6 with the error's real status."""
    return fnedge.error_reply(exc)


def _sources(request: DecodedRequest, n: int) -> tuple[Source | None, ...]:
    if request.sources is None:
        return (None,) * n
    if len(request.sources) != n:
        raise InvalidParameterError(f"sources has {len(request.sources)} entries for {n} images")
    return request.sources


def predict(body: bytes, headers: Mapping[str, str], call_id: str | None, deps: Deps) -> Reply:
    """Decode, classify, record and encode one call; every failure becomes a JSON error reply."""
    clock = deps.clock
    start = clock()
    try:
        request = codecs.decode(body, headers, deps.settings.max_json_bytes)
        decoded = clock()
        model, cold = deps.get_model()
        loaded = clock()
        m = model.manifest
        batch = to_batch(request.images, m.height, m.width, m.channels, deps.settings.max_batch)
        k = check_k(request.top_k if request.top_k is not None else deps.settings.top_k, len(model.labels))
        sources = _sources(request, batch.shape[0])
        prepared = clock()
        probabilities = model.engine.predict(batch)
        inferred = clock()
        labels = top_k(probabilities, k, model.labels)
        timings: dict[str, float] = {
            "decode_ms": _ms(start, decoded) + _ms(loaded, prepared),
            "inference_ms": _ms(prepared, inferred),
        }
        if cold:
            timings["model_load_ms"] = _ms(decoded, loaded)
        info = model.info()
        results = _record_all(deps, sources, labels, info, timings, call_id, cold)
        if any(r is not None for r in results):
            timings["record_ms"] = _ms(inferred, clock())
        timings["total_ms"] = _ms(start, clock())
        answer = codecs.Answer(info, labels, results, timings, cold, call_id)
        encoded = codecs.encode(answer, request)
    except PredictError as exc:
        log.warning("call failed", extra={"code": exc.code, "error": exc.message})
        return error_reply(exc)
    except Exception:  # never let a bug take the container down; the fdk would answer plain text
        log.exception("unexpected error")
        return error_reply(PredictError("unexpected error in predict; see the function log"))
    log.info(
        "predicted",
        extra={
            "format": request.fmt,
            "images": int(batch.shape[0]),
            "top1": [row[0].index for row in labels],
            "cold_start": cold,
            "engine": info["engine"],
            "timings": timings,
        },
    )
    return Reply(int(HTTPStatus.OK), encoded.body, encoded.headers)


def _record_all(
    deps: Deps,
    sources: tuple[Source | None, ...],
    labels: list[list[codecs.Label]],
    info: dict[str, str],
    timings: Mapping[str, float],
    call_id: str | None,
    cold: bool,
) -> list[dict[str, Any] | None]:
    """Record every image that has a full source, each on its own (see ``results.record``).

    Only when no recordable image could be written because the store is unreachable does the call
    fail (502 ``storage_unavailable``): then retrying the whole call is exactly what is needed.
    """
    results: list[dict[str, Any] | None] = []
    store: ResultStore | None = None
    index: IndexStore | None = None
    recorded_at = deps.now()
    for source, image_labels in zip(sources, labels, strict=True):
        if source is None or not source.recordable:
            results.append(None)
            continue
        if store is None:
            store, index = deps.get_store(), deps.get_index()
        doc = build_document(source, image_labels, info, timings, call_id, cold, recorded_at)
        s = deps.settings
        results.append(record(store, s.results_bucket, s.results_prefix, source, info, doc, index, deps.index_run))
    written = [r for r in results if r is not None]
    if written and all(r["status"] == FAILED and r["error"]["code"] == StorageUnavailableError.code for r in written):
        raise StorageUnavailableError(written[0]["error"]["message"])
    return results
