"""Types shared by the request decoders and response encoders (docs/contracts.md §3-4)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.oip import encode_answer
from fnvision_common.result_keys import ResultKeyError, check_bucket_name, check_object_key
from fnvision_common.s3client import normalise_etag

from ..errors import (
    DTypeError,
    InvalidParameterError,
    RequestError,
    ShapeError,
    UnknownPayloadError,
    ValueRangeError,
)
from .leanjson import InvalidJsonError, JsonTensor, RaggedError

MAX_METADATA_DEPTH = 32
"""Deepest nesting accepted in ``sources[i].metadata`` (it is copied into the result document)."""


@dataclass(frozen=True)
class Source:
    """Where an image came from; recorded when bucket, key and etag are all present."""

    bucket: str = ""
    key: str = ""
    etag: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def recordable(self) -> bool:
        """True when the result of this image must be recorded."""
        return bool(self.bucket and self.key and normalise_etag(self.etag))


@dataclass(frozen=True)
class OipOptions:
    """What an OIP v2 request asks of the response."""

    request_id: str | None = None
    outputs: tuple[str, ...] = ()
    """Requested output names in order; empty means all."""
    binary: Mapping[str, bool] = field(default_factory=dict)
    """Per-output binary flag (already resolved against binary_data_output)."""


@dataclass(frozen=True)
class DecodedRequest:
    """A request in any format, reduced to the images and the options."""

    fmt: str
    """oip, oip_binary, npy, tfs_row, tfs_columnar or wml."""
    images: npt.NDArray[Any]
    top_k: int | None = None
    sources: tuple[Source | None, ...] | None = None
    oip: OipOptions | None = None


@dataclass(frozen=True)
class Label:
    """One of the top-k classes of an image."""

    index: int
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"index": self.index, "label": self.label, "score": self.score}


@dataclass(frozen=True)
class Answer:
    """The outcome of one call, before it is encoded in the request's format."""

    model: Mapping[str, str]
    top_k: Sequence[Sequence[Label]]
    results: Sequence[Mapping[str, Any] | None]
    timings: Mapping[str, float]
    cold_start: bool
    call_id: str | None

    def native(self) -> dict[str, Any]:
        """Return the native JSON answer of contracts.md §4."""
        predictions: list[dict[str, Any]] = []
        for labels, result in zip(self.top_k, self.results, strict=True):
            entry: dict[str, Any] = {"top_k": [lab.to_dict() for lab in labels]}
            if result is not None:
                entry["result"] = dict(result)
            predictions.append(entry)
        return {
            "model": dict(self.model),
            "predictions": predictions,
            "timings": dict(self.timings),
            "cold_start": self.cold_start,
            "call_id": self.call_id,
        }

    def columns(self) -> tuple[list[list[int]], list[list[float]], list[list[str]]]:
        """Return top-k indices, scores and labels as [N][k] lists."""
        return (
            [[lab.index for lab in row] for row in self.top_k],
            [[lab.score for lab in row] for row in self.top_k],
            [[lab.label for lab in row] for row in self.top_k],
        )


@dataclass(frozen=True)
class Encoded:
    """A response body and its headers."""

    body: bytes
    headers: dict[str, str]


def json_encoded(doc: Any) -> Encoded:
    """A JSON answer: compact UTF-8, as every answer but OIP's binary outputs (fnvision_common.oip)."""
    return Encoded(*encode_answer(doc, ()))


def parse_top_k(value: Any) -> int | None:
    """Validate the optional top_k option (range is checked against the labels later)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"top_k must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InvalidParameterError(f"top_k must be an integer, got {value!r}")
    return int(value)


def loads(raw: bytes | str, what: str, error: type[RequestError] = RequestError) -> Any:
    """Parse JSON from the caller; any failure (syntax, encoding, nesting too deep) is a client error."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise error(f"{what} is nested too deeply to parse") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(f"{what} is not valid JSON: {exc}") from exc


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counting at most limit + 1 (so a hostile value costs little).

    A long numeric array (kept as text by leanjson) counts as too deep: it has no place in metadata.
    """
    if isinstance(value, JsonTensor):
        return limit + 1
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def parse_sources(value: Any) -> tuple[Source | None, ...] | None:
    """Validate the optional sources option: a list of null or {bucket,key,etag,metadata}."""
    if value is None:
        return None
    if isinstance(value, str):
        value = loads(value, "sources", InvalidParameterError)
    if not isinstance(value, list):
        raise InvalidParameterError("sources must be a list with one entry (or null) per image")
    parsed: list[Source | None] = []
    for i, entry in enumerate(value):
        if entry is None:
            parsed.append(None)
            continue
        if not isinstance(entry, dict):
            raise InvalidParameterError(f"sources[{i}] must be an object or null")
        parts = {k: entry.get(k) or "" for k in ("bucket", "key", "etag")}
        if not all(isinstance(v, str) for v in parts.values()):
            raise InvalidParameterError(f"sources[{i}]: bucket, key and etag must be strings")
        if parts["key"]:
            try:
                check_object_key(parts["key"])
            except ResultKeyError as exc:
                raise InvalidParameterError(f"sources[{i}].key names no object: {exc}") from exc
        if parts["bucket"]:
            try:
                check_bucket_name(parts["bucket"])
            except ResultKeyError as exc:
                raise InvalidParameterError(f"sources[{i}].bucket: {exc}") from exc
        metadata = entry.get("metadata")
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise InvalidParameterError(f"sources[{i}].metadata must be an object")
        if _depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            # it is copied into the result document: keep json.dumps far from the recursion limit
            raise InvalidParameterError(
                f"sources[{i}].metadata is nested deeper than {MAX_METADATA_DEPTH} levels "
                "or holds a numeric array of 16 KiB or more"
            )
        parsed.append(Source(bucket=parts["bucket"], key=parts["key"], etag=parts["etag"], metadata=metadata))
    return tuple(parsed)


def _numbers(value: Any, what: str) -> npt.NDArray[Any]:
    """Turn nested JSON lists into an integer or float array; anything but numbers is refused.

    ``np.asarray(value, dtype=float32)`` would silently turn "1" into 1.0 and true into 1.0: the
    dtype is discovered first so that strings, booleans, null and objects are errors.
    """
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged lists, or more than numpy's 64 dimensions
        raise ShapeError(f"{what} is not a rectangular array of numbers: {exc}") from exc
    if array.dtype.kind in "iuf":
        return array
    if array.dtype.kind == "O" and array.size and all(type(x) is int for x in array.flat):
        raise ValueRangeError(f"{what} holds integers beyond 64 bits")
    kinds = {"U": "strings", "S": "strings", "b": "booleans"}
    found = kinds.get(array.dtype.kind, "null, objects or nested values")
    raise DTypeError(f"{what} must hold JSON numbers only, found {found}")


def _convert(value: Any, what: str, cast: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Turn a JSON tensor (nested lists, a leanjson ``JsonTensor``, or a list of them) into ``cast``'s dtype.

    A ``JsonTensor`` is parsed piece by piece, each piece checked by ``_numbers`` and cast at once, so
    the tensor never exists as Python numbers (nor as int64/float64) in full.
    """
    try:
        if isinstance(value, JsonTensor):
            return value.to_array(lambda piece: cast(_numbers(piece, what)))
        if isinstance(value, list) and any(isinstance(item, JsonTensor) for item in value):
            return _stack(value, what, cast)  # e.g. TF Serving instances of {"images": tensor}
    except RaggedError as exc:
        raise ShapeError(f"{what} is not a rectangular array of numbers: {exc}") from exc
    except InvalidJsonError as exc:
        raise UnknownPayloadError(f"{what}: {exc}") from exc
    except RecursionError as exc:  # a piece nested beyond json's limit
        raise RequestError(f"{what} is nested too deeply to parse") from exc
    return cast(_numbers(value, what))


def _stack(items: list[Any], what: str, cast: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Convert the items one by one into one preallocated array (never all of them twice)."""
    out: npt.NDArray[Any] | None = None
    for k, item in enumerate(items):
        part = _convert(item, what, cast)
        if out is None:
            out = np.empty((len(items), *part.shape), dtype=part.dtype)
        elif part.shape != out.shape[1:]:
            raise ShapeError(
                f"{what} is not a rectangular array of numbers: elements of shapes "
                f"{list(out.shape[1:])} and {list(part.shape)}"
            )
        out[k] = part
    assert out is not None  # items is not empty: it holds a JsonTensor
    return out


def _to_float32(array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    with np.errstate(over="ignore"):  # beyond float32 -> inf, refused as invalid_value by tensors.to_batch
        return array.astype(np.float32, copy=False)


def json_tensor(value: Any, what: str) -> npt.NDArray[np.float32]:
    """Turn a JSON tensor of numbers into a float32 array (JSON carries no dtype)."""
    return _convert(value, what, _to_float32)


def _typed(array: npt.NDArray[Any], dtype: type[np.generic], what: str) -> npt.NDArray[Any]:
    if np.dtype(dtype) != np.uint8:
        with np.errstate(over="ignore"):
            return array.astype(dtype, copy=False)
    if array.size:
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.floor(array)).all()):
            raise ValueRangeError(f"{what}: UINT8 data must be integers 0..255")
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise ValueRangeError(f"{what}: UINT8 data must be in 0..255, got {low}..{high}")
    return array.astype(np.uint8)


def typed_tensor(values: Any, dtype: type[np.generic], what: str) -> npt.NDArray[Any]:
    """Turn a JSON tensor into an array of a declared dtype (UINT8: integers 0..255, FP32: numbers)."""
    return _convert(values, what, lambda array: _typed(array, dtype, what))
