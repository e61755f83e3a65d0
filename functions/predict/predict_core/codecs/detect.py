"""Find the format of a request body (docs/contracts.md §3, in this order) and decode it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import (
    DTypeError,
    EmptyBodyError,
    PayloadTooLargeError,
    RequestError,
    UnknownPayloadError,
    ValueRangeError,
)
from . import leanjson, npy, oip, tfserving, wml
from .base import Answer, DecodedRequest, Encoded

_ENCODERS: dict[str, Callable[[Answer, DecodedRequest], Encoded]] = {
    "oip": oip.encode,
    "oip_binary": oip.encode,
    "npy": npy.encode,
    "tfs_row": tfserving.encode,
    "tfs_columnar": tfserving.encode,
    "wml": wml.encode,
}


def decode(body: bytes, headers: Mapping[str, str], max_json_bytes: int = 16 << 20) -> DecodedRequest:
    """Decode a body; headers are lower-case. Raise a RequestError subclass when it cannot be used.

    JSON bodies above max_json_bytes are refused before parsing. Below it, ``leanjson`` keeps what a
    JSON body costs bounded: tensors are parsed piece by piece into the request's dtype, and the rest
    of the document may hold at most ``leanjson.MAX_SKELETON_VALUES`` values.
    """
    if not body:
        raise EmptyBodyError("the request body is empty; send images as OIP v2, .npy, TF Serving or WML")
    header_length = headers.get(oip.HEADER_LENGTH)
    if header_length is not None:
        return oip.decode_binary(body, header_length)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == npy.CONTENT_TYPE or body.startswith(npy.MAGIC):
        return npy.decode(body)
    if len(body) > max_json_bytes:
        raise PayloadTooLargeError(
            f"a JSON body of {len(body)} bytes is over MAX_JSON_BYTES={max_json_bytes}; "
            "send big batches as .npy or with the OIP binary extension"
        )
    try:
        doc = leanjson.loads(body)
    except RecursionError as exc:  # valid JSON maybe, but nested beyond any tensor: refuse, never crash
        raise RequestError(f"the JSON body ({len(body)} bytes) is nested too deeply to parse") from exc
    except leanjson.TooManyValuesError as exc:
        raise PayloadTooLargeError(f"{exc}; send tensors as arrays of numbers") from exc
    except leanjson.MixedArrayError as exc:
        if exc.found in ("NaN", "Infinity"):
            raise ValueRangeError(str(exc)) from exc
        raise DTypeError(str(exc)) from exc
    except leanjson.InvalidJsonError as exc:
        raise UnknownPayloadError(
            f"the body ({len(body)} bytes, content-type {content_type or 'none'}) is neither .npy nor JSON: {exc}"
        ) from exc
    if not isinstance(doc, dict):
        raise UnknownPayloadError("a JSON body must be an object (OIP v2, TF Serving or WML)")
    if oip.is_oip_json(doc):
        return oip.decode_json(doc)
    if "instances" in doc:
        return tfserving.decode_row(doc)
    if "inputs" in doc:
        if doc["inputs"] == []:
            raise RequestError("`inputs` is empty")
        return tfserving.decode_columnar(doc)
    if "input_data" in doc:
        return wml.decode(doc)
    keys = ", ".join(sorted(doc)[:5]) or "none"
    raise UnknownPayloadError(
        f"unknown JSON payload (keys: {keys}); expected inputs (OIP v2 / TF Serving), instances or input_data"
    )


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Encode the answer in the format the request came in."""
    return _ENCODERS[request.fmt](answer, request)
