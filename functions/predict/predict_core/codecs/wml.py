"""IBM DAS / Watson Machine Learning scoring payload: {"input_data": [{"fields": [...], "values": [...]}]}."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from .base import Answer, DecodedRequest, Encoded, json_encoded, json_tensor, parse_sources, parse_top_k

FIELDS = ["index", "label", "score"]


def decode(doc: Mapping[str, Any]) -> DecodedRequest:
    """Decode `values` as a batch of images; rows of one field ([[image], ...]) are accepted too."""
    data = doc["input_data"]
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise RequestError("`input_data` must be a list holding one {fields, values} object")
    if "values" not in data[0]:
        raise RequestError("`input_data[0]` has no `values`")
    fields = data[0].get("fields")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        raise RequestError("`input_data[0].fields` must be a list of strings")
    images = json_tensor(data[0]["values"], "input_data[0].values")
    if images.ndim == 5 and images.shape[1] == 1:  # one field per row: [[image], [image], ...]
        images = images[:, 0]
    return DecodedRequest(
        fmt="wml",
        images=images,
        top_k=parse_top_k(doc.get("top_k")),
        sources=parse_sources(doc.get("sources")),
    )


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Answer {"predictions": [{"id": "top_k", "fields": [...], "values": [[[i, label, score], ...]]}]}."""
    values = [[[lab.index, lab.label, lab.score] for lab in row] for row in answer.top_k]
    doc = {
        "predictions": [{"id": "top_k", "fields": FIELDS, "values": values}],
        "fnvision": answer.native(),
    }
    return json_encoded(doc)
