"""Open Inference Protocol v2 (KServe v2 / Triton): JSON tensors and the binary tensor extension."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DTypeError, InvalidParameterError, RequestError, ShapeError
from .base import (
    JSON_TYPE,
    Answer,
    DecodedRequest,
    Encoded,
    OipOptions,
    dump_json,
    loads,
    parse_sources,
    parse_top_k,
    typed_tensor,
)
from .leanjson import JsonTensor

HEADER_LENGTH = "inference-header-content-length"
OUTPUT_NAMES = ("top_k_indices", "top_k_scores", "top_k_labels")
_DTYPES: dict[str, type[np.generic]] = {"UINT8": np.uint8, "FP32": np.float32}
_UNSUPPORTED_OUTPUT_PARAMS = ("classification", "shared_memory_region")


def is_oip_json(doc: Mapping[str, Any]) -> bool:
    """True when `inputs` is a list of tensor objects (OIP), not a TF Serving tensor."""
    inputs = doc.get("inputs")
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(t, dict) for t in inputs)


def decode_binary(body: bytes, header_length: str) -> DecodedRequest:
    """Decode a request with the binary tensor extension (JSON header, then raw tensor bytes)."""
    try:
        size = int(header_length)
    except ValueError as exc:
        raise RequestError(f"Inference-Header-Content-Length={header_length!r} is not an integer") from exc
    if not 0 < size <= len(body):
        raise RequestError(f"Inference-Header-Content-Length={size} but the body has {len(body)} bytes")
    doc = loads(body[:size], "the OIP inference header")
    if not isinstance(doc, dict):
        raise RequestError("the OIP inference header must be a JSON object")
    return _decode(doc, memoryview(body)[size:], binary=True)


def decode_json(doc: Mapping[str, Any]) -> DecodedRequest:
    """Decode an OIP v2 JSON request whose tensors carry their `data` inline."""
    return _decode(doc, memoryview(b""), binary=False)


def _object(value: Any, what: str, error: type[RequestError] = RequestError) -> Mapping[str, Any]:
    """An optional JSON object: null/absent is {}, anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _flag(params: Mapping[str, Any], key: str, default: bool, what: str) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{what}.{key} must be true or false, got {value!r}")
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decode(doc: Mapping[str, Any], tail: memoryview, binary: bool) -> DecodedRequest:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("an OIP request needs a non-empty `inputs` list")
    if len(inputs) != 1:
        raise RequestError(f"the model has one input (images), the request has {len(inputs)}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise RequestError("OIP inputs must be tensor objects")
    images = _input_array(tensor, tail)
    params = _object(doc.get("parameters"), "OIP `parameters`", InvalidParameterError)
    return DecodedRequest(
        fmt="oip_binary" if binary else "oip",
        images=images,
        top_k=parse_top_k(params.get("top_k")),
        sources=parse_sources(params.get("sources")),
        oip=_options(doc, params),
    )


def _input_array(tensor: Mapping[str, Any], tail: memoryview) -> npt.NDArray[Any]:
    name = tensor.get("name", "?")
    if not isinstance(name, str):
        raise RequestError(f"an OIP input name must be a string, got {name!r}")
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise ShapeError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(datatype, str) or datatype not in _DTYPES:
        raise DTypeError(f"input {name!r}: datatype {datatype!r} is not supported; use UINT8 or FP32")
    dtype = _DTYPES[datatype]
    count = math.prod(shape)  # exact: np.prod would wrap around on a hostile shape
    params = _object(tensor.get("parameters"), f"input {name!r} `parameters`")
    binary_size = params.get("binary_data_size")
    if binary_size is not None:
        if not _is_count(binary_size):
            raise RequestError(f"input {name!r}: binary_data_size must be a non-negative integer, got {binary_size!r}")
        expected = count * np.dtype(dtype).itemsize
        if binary_size != expected or len(tail) != binary_size:
            raise ShapeError(
                f"input {name!r}: shape {shape} {datatype} needs {expected} bytes, "
                f"binary_data_size is {binary_size} and {len(tail)} bytes follow the header"
            )
        return _reshape(np.frombuffer(tail, dtype=dtype), shape, name)
    if "data" not in tensor:
        raise RequestError(f"input {name!r} has neither `data` nor parameters.binary_data_size")
    if not isinstance(tensor["data"], list | JsonTensor):
        raise RequestError(f"input {name!r}: `data` must be a JSON array")
    array = typed_tensor(tensor["data"], dtype, f"input {name!r}")
    if array.size != count:
        raise ShapeError(f"input {name!r}: shape {shape} needs {count} values, data has {array.size}")
    return _reshape(array, shape, name)


def _reshape(array: npt.NDArray[Any], shape: list[int], name: str) -> npt.NDArray[Any]:
    try:
        return array.reshape(shape)
    except ValueError as exc:  # more than 64 dimensions, or a zero-size shape with a huge dimension
        raise ShapeError(f"input {name!r}: shape {shape} is not usable: {exc}") from exc


def _options(doc: Mapping[str, Any], params: Mapping[str, Any]) -> OipOptions:
    default_binary = _flag(params, "binary_data_output", False, "parameters")
    requested = doc.get("outputs")
    if requested is None:
        requested = []
    if not isinstance(requested, list):
        raise InvalidParameterError("OIP `outputs` must be a list")
    names: list[str] = []
    binary: dict[str, bool] = {}
    for i, out in enumerate(requested):
        if not isinstance(out, dict):
            raise InvalidParameterError(f"outputs[{i}] must be an object with a `name`")
        name = out.get("name")
        if not isinstance(name, str) or name not in OUTPUT_NAMES:
            raise InvalidParameterError(f"unknown output {name!r}; outputs are {', '.join(OUTPUT_NAMES)}")
        out_params = _object(out.get("parameters"), f"outputs[{i}].parameters", InvalidParameterError)
        for unsupported in _UNSUPPORTED_OUTPUT_PARAMS:
            if unsupported in out_params:
                raise InvalidParameterError(f"output parameter {unsupported!r} is not supported")
        names.append(name)
        binary[name] = _flag(out_params, "binary_data", default_binary, f"outputs[{i}].parameters")
    for name in OUTPUT_NAMES:
        binary.setdefault(name, default_binary)
    request_id = doc.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise RequestError(f"OIP `id` must be a string, got {request_id!r}")
    return OipOptions(request_id=None if request_id is None else str(request_id), outputs=tuple(names), binary=binary)


def _bytes_tensor(labels: list[list[str]]) -> bytes:
    """Serialise a BYTES tensor the Triton way: each element as <uint32 LE length><bytes>."""
    parts: list[bytes] = []
    for row in labels:
        for text in row:
            raw = text.encode()
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
    return b"".join(parts)


def _binary(name: str, indices: list[list[int]], scores: list[list[float]], labels: list[list[str]]) -> bytes:
    """Serialise one output tensor as raw little-endian bytes, as Triton does."""
    if name == "top_k_indices":
        return np.asarray(indices, dtype="<i4").tobytes()
    if name == "top_k_scores":
        return np.asarray(scores, dtype="<f4").tobytes()
    return _bytes_tensor(labels)


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Encode the answer as an OIP v2 response, with binary outputs where the request asked."""
    options = request.oip or OipOptions()
    indices, scores, labels = answer.columns()
    n = len(indices)
    k = len(indices[0]) if n else 0
    native = answer.native()
    parameters: dict[str, Any] = {
        "engine": answer.model.get("engine"),
        "model_digest": answer.model.get("digest"),
        "cold_start": answer.cold_start,
        "call_id": answer.call_id or "",
        "decode_ms": answer.timings.get("decode_ms", 0.0),
        "inference_ms": answer.timings.get("inference_ms", 0.0),
        "fnvision": json.dumps(native, separators=(",", ":")),
    }
    datatypes = {"top_k_indices": "INT32", "top_k_scores": "FP32", "top_k_labels": "BYTES"}
    rows: dict[str, list[list[Any]]] = {
        "top_k_indices": [list(r) for r in indices],
        "top_k_scores": [list(r) for r in scores],
        "top_k_labels": [list(r) for r in labels],
    }
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in options.outputs or OUTPUT_NAMES:
        out: dict[str, Any] = {"name": name, "datatype": datatypes[name], "shape": [n, k]}
        if options.binary.get(name, False):
            blob = _binary(name, indices, scores, labels)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = [value for row in rows[name] for value in row]
        outputs.append(out)
    doc: dict[str, Any] = {
        "model_name": answer.model.get("name"),
        "model_version": answer.model.get("version"),
        "parameters": parameters,
        "outputs": outputs,
    }
    if options.request_id is not None:
        doc["id"] = options.request_id
    header = dump_json(doc)
    if not blobs:
        return Encoded(header, {"Content-Type": JSON_TYPE})
    return Encoded(
        header + b"".join(blobs),
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
