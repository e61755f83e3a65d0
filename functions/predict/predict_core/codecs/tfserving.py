"""TensorFlow Serving REST predict API: row (`instances`) and columnar (`inputs`) formats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import RequestError
from .base import Answer, DecodedRequest, Encoded, json_encoded, json_tensor, parse_sources, parse_top_k
from .leanjson import JsonTensor


def _unwrap(value: Any, what: str) -> Any:
    """Named-input form {"images": tensor} -> tensor (the model has exactly one input)."""
    if isinstance(value, dict):
        if len(value) != 1:
            raise RequestError(f"{what}: the model has one input (images), got {sorted(value)}")
        return next(iter(value.values()))
    return value


def decode_row(doc: Mapping[str, Any]) -> DecodedRequest:
    """Decode {"instances": [image, ...]} where an image is a tensor or {"images": tensor}."""
    instances = doc["instances"]
    if isinstance(instances, JsonTensor):  # a long numeric array: the images themselves
        rows: Any = instances
    elif isinstance(instances, list) and instances:
        rows = [_unwrap(inst, f"instances[{i}]") for i, inst in enumerate(instances)]
    else:
        raise RequestError("`instances` must be a non-empty list")
    images: npt.NDArray[np.float32] = json_tensor(rows, "instances")
    return DecodedRequest(
        fmt="tfs_row",
        images=images,
        top_k=parse_top_k(doc.get("top_k")),
        sources=parse_sources(doc.get("sources")),
    )


def decode_columnar(doc: Mapping[str, Any]) -> DecodedRequest:
    """Decode {"inputs": tensor} or {"inputs": {"images": tensor}}."""
    tensor = _unwrap(doc["inputs"], "inputs")
    return DecodedRequest(
        fmt="tfs_columnar",
        images=json_tensor(tensor, "inputs"),
        top_k=parse_top_k(doc.get("top_k")),
        sources=parse_sources(doc.get("sources")),
    )


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Row requests get `predictions` (one object per instance), columnar ones get `outputs`.

    The native answer rides along under `fnvision` (TF Serving clients ignore extra keys).
    """
    indices, scores, labels = answer.columns()
    doc: dict[str, Any]
    if request.fmt == "tfs_row":
        doc = {
            "predictions": [
                {"top_k_indices": i, "top_k_scores": s, "top_k_labels": lab}
                for i, s, lab in zip(indices, scores, labels, strict=True)
            ]
        }
    else:
        doc = {"outputs": {"top_k_indices": indices, "top_k_scores": scores, "top_k_labels": labels}}
    doc["fnvision"] = answer.native()
    return json_encoded(doc)
