"""A prepared chunk → one batched predict call (split by size inside the client) → each item's answer.

predict's answer per image (docs/contracts.md §4) becomes the item's ``top_k`` and ``result``; an
image predict refused (a client error, permanent) fails with ``predict_rejected`` and gets a failure
record; an image predict classified but could not record is handled by ``failures.not_recorded``.
A predict call that fails as a whole (``PredictCallError``) fails the call. Every answer also tells
which model predict serves (``ServedModel``, for the duplicate check of later events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .deps import Deps
from .failures import fail, not_recorded
from .items import Chunk, Item
from .predict_client import PredictAnswer


@dataclass(frozen=True)
class Predicted:
    """A chunk's items with their answers, the model that made them, and how many predict calls it took."""

    items: list[Item]
    model: dict[str, Any] = field(default_factory=dict)
    calls: int = 0


def predict_chunk(chunk: Chunk, deps: Deps, call_id: str | None) -> Predicted:
    """Send the items waiting for predict in one batch; the others pass through unchanged."""
    waiting = [i for i, item in enumerate(chunk.items) if item.predict_source is not None]
    if not waiting or chunk.batch is None:
        return Predicted(chunk.items)
    sources = [chunk.items[i].predict_source for i in waiting]
    answer = deps.predictor.predict(chunk.batch, sources, call_id)
    deps.served_model.learn(answer.model)
    items = list(chunk.items)
    for row, i in enumerate(waiting):
        items[i] = _answered(items[i], row, answer, deps, call_id)
    return Predicted(items, answer.model, answer.calls)


def _answered(item: Item, row: int, answer: PredictAnswer, deps: Deps, call_id: str | None) -> Item:
    """One item with predict's answer for its row of the batch."""
    rejected = answer.rejected.get(row)
    if rejected is not None:
        source = (item.predict_source or {}).get("metadata", {}).get("source")
        return fail(item, rejected, deps, call_id, stage="predict", source=source)
    prediction = answer.predictions[row]
    result = prediction.get("result")
    if isinstance(result, dict) and result.get("status") == "failed":
        return not_recorded(item, result, deps, call_id)
    entries: dict[str, Any] = {"status": "ok", "top_k": prediction.get("top_k", [])}
    if result is not None:
        entries["result"] = result
    return Item(item.input, {**item.answer, **entries})
