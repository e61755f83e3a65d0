"""Open Inference Protocol v2 (KServe v2 / Triton): JSON tensors and the binary tensor extension.

The binary layout itself is ``fnvision_common.oip`` (preprocess writes requests with it too); this
module validates what a caller sent and answers with predict's error codes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common import oip as wire

from ..errors import DTypeError, InvalidParameterError, RequestError, ShapeError
from .base import (
    Answer,
    DecodedRequest,
    Encoded,
    OipOptions,
    loads,
    parse_sources,
    parse_top_k,
    typed_tensor,
)
from .leanjson import JsonTensor

HEADER_LENGTH = wire.HEADER_LENGTH.lower()
"""The header as ``codecs.decode`` sees it (lower-cased)."""
OUTPUT_NAMES = ("top_k_indices", "top_k_scores", "top_k_labels")
_DATATYPES = {"top_k_indices": "INT32", "top_k_scores": "FP32", "top_k_labels": "BYTES"}
_DTYPES: dict[str, type[np.generic]] = {"UINT8": np.uint8, "FP32": np.float32}
"""The input datatypes the model takes (its engines convert both)."""
_UNSUPPORTED_OUTPUT_PARAMS = ("classification", "shared_memory_region")


def is_oip_json(doc: Mapping[str, Any]) -> bool:
    """True when `inputs` is a list of tensor objects (OIP), not a TF Serving tensor."""
    inputs = doc.get("inputs")
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(t, dict) for t in inputs)


def decode_binary(body: bytes, header_length: str) -> DecodedRequest:
    """Decode a request with the binary tensor extension (JSON header, then raw tensor bytes)."""
    try:
        head, tail = wire.split(body, header_length)
    except wire.LayoutError as exc:
        raise RequestError(str(exc)) from exc
    doc = loads(head, "the OIP inference header")
    if not isinstance(doc, dict):
        raise RequestError("the OIP inference header must be a JSON object")
    return _decode(doc, tail, binary=True)


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
        return _reshape(np.frombuffer(tail, dtype=wire.DTYPES[datatype]), shape, name)
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


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Encode the answer as an OIP v2 response, with binary outputs where the request asked."""
    options = request.oip or OipOptions()
    rows: dict[str, list[list[Any]]] = dict(zip(OUTPUT_NAMES, answer.columns(), strict=True))
    n = len(answer.top_k)
    k = len(answer.top_k[0]) if n else 0
    native = answer.native()
    parameters: dict[str, Any] = {
        "engine": answer.model.get("engine"),
        "model_digest": answer.model.get("digest"),
        "cold_start": answer.cold_start,
        "call_id": answer.call_id or "",
        "decode_ms": answer.timings.get("decode_ms", 0.0),
        "inference_ms": answer.timings.get("inference_ms", 0.0),
        wire.NATIVE_PARAMETER: json.dumps(native, separators=(",", ":")),
    }
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in options.outputs or OUTPUT_NAMES:
        out: dict[str, Any] = {"name": name, "datatype": _DATATYPES[name], "shape": [n, k]}
        if options.binary.get(name, False):
            blob = wire.pack(_DATATYPES[name], rows[name])
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
    return Encoded(*wire.encode_answer(doc, blobs))
