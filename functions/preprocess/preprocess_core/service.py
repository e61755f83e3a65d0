"""Orchestration: inputs → bytes → tensors + metadata → one batched predict per chunk → per-item answer.

Pure: everything outside (storage, web, predict, clock) comes in through ``Deps``. The steps have
their own modules: ``prepare`` (fetch by input kind, decode, metadata, the duplicate check),
``batch_predict`` (the predict call and its answer per item) and ``failures`` (failure records and
when a failure fails the call: "nothing lost"). Storage-event calls answer 200 with a status per
item; events with more than ``MAX_IMAGES`` objects are processed in chunks of ``MAX_IMAGES`` (one
predict call each, tensors released in between).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import failures
from .batch_predict import predict_chunk
from .deps import Deps
from .inputs import ParsedRequest
from .items import Item
from .prepare import prepare_chunk

log = logging.getLogger(__name__)


def run(request: ParsedRequest, deps: Deps, call_id: str | None) -> dict[str, Any]:
    """Process every input, call predict once per chunk of MAX_IMAGES (or per size cap), answer per item."""
    started = time.perf_counter()
    size = deps.settings.max_images
    items: list[Item] = []
    model: dict[str, Any] = {}
    calls = 0
    for start in range(0, len(request.inputs), size):
        chunk = prepare_chunk(request.inputs[start : start + size], deps, call_id, check_done=request.from_event)
        predicted = predict_chunk(chunk, deps, call_id)
        items += predicted.items
        model, calls = predicted.model or model, calls + predicted.calls

    error = failures.call_error(items, from_event=request.from_event, ignored=len(request.ignored))
    if error is not None:
        raise error
    counts = _counts(items, len(request.ignored), calls)
    log.info("preprocess done", extra={k: v for k, v in counts.items() if k != "ok"})
    if request.from_event:
        failures.fail_if_retryable(items)
    return {
        "call_id": call_id,
        "model": model or None,
        "predictions": [it.answer for it in items],
        "ignored": [i.to_dict() for i in request.ignored],
        "counts": counts,
        "timings": {"total_ms": round((time.perf_counter() - started) * 1000, 1)},
    }


def _counts(items: list[Item], ignored: int, calls: int) -> dict[str, int]:
    failed = sum(1 for it in items if it.error is not None)
    done = sum(1 for it in items if it.answer.get("status") == "done")
    return {
        "images": len(items),
        "ok": len(items) - failed - done,
        "failed": failed,
        "done": done,
        "ignored": ignored,
        "predict_calls": calls,
    }
