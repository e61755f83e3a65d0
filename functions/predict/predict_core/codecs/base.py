"""Types shared by the request decoders and response encoders (docs/contracts.md §3-4)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DTypeError, InvalidParameterError, ShapeError, ValueRangeError

JSON_TYPE = "application/json"


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
        return bool(self.bucket and self.key and self.etag.strip().removeprefix("W/").strip('"'))


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
    results: Sequence[Mapping[str, str] | None]
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


def dump_json(obj: Any) -> bytes:
    """Serialise compactly as UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def parse_top_k(value: Any) -> int | None:
    """Validate the optional top_k option (range is checked against the labels later)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidParameterError(f"top_k must be an integer, got {value!r}")
    return int(value)


def parse_sources(value: Any) -> tuple[Source | None, ...] | None:
    """Validate the optional sources option: a list of null or {bucket,key,etag,metadata}."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidParameterError(f"sources is not valid JSON: {exc}") from exc
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
        metadata = entry.get("metadata")
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise InvalidParameterError(f"sources[{i}].metadata must be an object")
        parsed.append(Source(bucket=parts["bucket"], key=parts["key"], etag=parts["etag"], metadata=metadata))
    return tuple(parsed)


def json_tensor(value: Any, what: str) -> npt.NDArray[np.float32]:
    """Turn a nested JSON list of numbers into a float32 array (JSON carries no dtype)."""
    try:
        return np.asarray(value, dtype=np.float32)
    except ValueError as exc:
        text = str(exc)
        if "inhomogeneous" in text or "sequence" in text:
            raise ShapeError(f"{what} is not a rectangular array: {text}") from exc
        raise DTypeError(f"{what} must hold numbers: {text}") from exc
    except TypeError as exc:
        raise DTypeError(f"{what} must hold numbers: {exc}") from exc


def typed_tensor(values: Any, dtype: type[np.generic], what: str) -> npt.NDArray[Any]:
    """Turn a JSON list into an array of a declared dtype; out-of-range integers are value errors."""
    try:
        return np.asarray(values, dtype=dtype)
    except OverflowError as exc:
        raise ValueRangeError(f"{what}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        if "inhomogeneous" in str(exc):
            raise ShapeError(f"{what} is not a rectangular array: {exc}") from exc
        raise DTypeError(f"{what} must hold numbers of its datatype: {exc}") from exc
