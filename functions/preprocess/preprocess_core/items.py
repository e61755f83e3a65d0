"""One input's way through a call (``Item``), and a chunk of them on its way to predict (``Chunk``).

Each step (``prepare``, ``batch_predict``, ``failures``) takes items and returns new ones; an item's
``answer`` is its entry in the answer's ``predictions`` (functions/preprocess/README.md, "Answer").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.objects import ObjectRef

from .errors import PreprocessError
from .inputs import Input, Refused, UrlRef


@dataclass(frozen=True)
class Item:
    """An input, its answer entry so far, and what the next step needs."""

    input: Input
    answer: dict[str, Any]
    error: PreprocessError | None = None
    """Why it failed (the answer says so too); None while it is fine."""
    predict_source: dict[str, Any] | None = None
    """While it waits for predict: its entry in ``parameters.sources`` (docs/contracts.md §3)."""

    def answered(self, **entries: Any) -> Item:
        """This item with more in its answer entry."""
        return replace(self, answer={**self.answer, **entries})


@dataclass(frozen=True)
class Chunk:
    """Up to ``MAX_IMAGES`` prepared items, and the tensors of those waiting for predict, stacked in order."""

    items: list[Item]
    batch: npt.NDArray[np.uint8] | None = field(default=None, repr=False)


def describe(item: Input) -> dict[str, Any]:
    """How an input is named in the answer."""
    if isinstance(item, Refused):
        item = item.ref
    if isinstance(item, ObjectRef):
        return {"bucket": item.bucket, "key": item.key}
    if isinstance(item, UrlRef):
        return {"url": item.url}
    return {"upload": item.name}
