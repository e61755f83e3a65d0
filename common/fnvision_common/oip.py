"""The Open Inference Protocol v2 binary tensor extension, as preprocess writes it and predict reads
and answers it (docs/contracts.md §3-4): the one definition of the wire layout.

A binary message is a JSON header of ``Inference-Header-Content-Length`` bytes, then the raw bytes of
every tensor whose header entry says ``parameters.binary_data_size``, in the order the header lists
them. Numbers are little-endian (UINT8 bytes, INT32 ``<i4``, FP32 ``<f4``); a BYTES tensor is each
element as ``<uint32 LE length><bytes>``, as Triton writes it. A message without binary tensors is the
JSON alone (no length header).

fn-vision's own parts of the protocol are here too: the request preprocess sends (input tensor,
``parameters.top_k``, ``parameters.sources`` as a JSON string, because OIP parameter values must be
scalars) and ``parameters.fnvision``, where predict's answer carries the native answer of §4.
Validation and error codes stay with each side: this module raises ``LayoutError`` (a ValueError).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
NATIVE_PARAMETER = "fnvision"
"""The answer parameter holding the native answer (contracts.md §4) as a JSON string."""
DTYPES: Mapping[str, np.dtype[Any]] = {
    "UINT8": np.dtype("u1"),
    "INT32": np.dtype("<i4"),
    "FP32": np.dtype("<f4"),
}
"""The numeric datatypes fn-vision puts on the wire, with their byte order (BYTES is ``pack_bytes``)."""
_LENGTH = struct.Struct("<I")


class LayoutError(ValueError):
    """A body or tensor that does not follow the binary layout."""


def dump_json(doc: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII kept as is: how both sides write a header."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def join(header: Mapping[str, Any], blobs: Iterable[bytes]) -> tuple[bytes, int]:
    """A binary message: its body and the length of its JSON header (the header's value)."""
    head = dump_json(header)
    return head + b"".join(blobs), len(head)


def split(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail of a message, given its length header's value."""
    try:
        size = int(header_length)
    except ValueError as exc:
        raise LayoutError(f"{HEADER_LENGTH}={header_length!r} is not an integer") from exc
    if not 0 < size <= len(body):
        raise LayoutError(f"{HEADER_LENGTH}={size} but the body has {len(body)} bytes")
    return body[:size], memoryview(body)[size:]


def read_json(body: bytes, header_length: str | None) -> Any:
    """The JSON document of a message: the header of a binary one, else the whole body.

    Raises ValueError (a ``LayoutError``, or json's own for a body that is not JSON).
    """
    head = body if header_length is None else split(body, header_length)[0]
    return json.loads(head)


def pack_bytes(elements: Iterable[str | bytes]) -> bytes:
    """A BYTES tensor's raw form: each element (text as UTF-8) as ``<uint32 LE length><bytes>``."""
    parts: list[bytes] = []
    for element in elements:
        raw = element.encode() if isinstance(element, str) else element
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def unpack_bytes(raw: bytes | memoryview) -> list[bytes]:
    """The elements of a BYTES tensor's raw form, in order."""
    data = memoryview(raw)
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + _LENGTH.size > len(data):
            raise LayoutError(f"a BYTES element's length is cut off at byte {offset}")
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + size > len(data):
            raise LayoutError(f"a BYTES element of {size} bytes at byte {offset} runs past the end")
        elements.append(bytes(data[offset : offset + size]))
        offset += size
    return elements


def pack(datatype: str, values: Any) -> bytes:
    """A tensor's raw form from nested lists (or an array), row-major."""
    if datatype == "BYTES":
        return pack_bytes(_flat(values))
    return np.asarray(values, dtype=_dtype(datatype)).tobytes()


def unpack(datatype: str, raw: bytes | memoryview, shape: Sequence[int]) -> npt.NDArray[Any]:
    """A tensor from its raw form: a little-endian array, or for BYTES an object array of bytes."""
    if datatype == "BYTES":
        elements = unpack_bytes(raw)
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
    else:
        dtype = _dtype(datatype)
        if len(raw) % dtype.itemsize:
            raise LayoutError(f"{len(raw)} bytes are not a whole number of {datatype} values")
        array = np.frombuffer(raw, dtype=dtype)
    try:
        return array.reshape(shape)
    except ValueError as exc:
        raise LayoutError(f"{array.size} {datatype} values do not make a tensor of shape {list(shape)}") from exc


def binary_tensors(tensors: Sequence[Mapping[str, Any]], tail: bytes | memoryview) -> dict[str, memoryview]:
    """Slice the binary tail among the tensors that say ``parameters.binary_data_size``, by name."""
    data = memoryview(tail)
    found: dict[str, memoryview] = {}
    offset = 0
    for tensor in tensors:
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(data):
            raise LayoutError(f"tensor {tensor.get('name')!r}: binary_data_size {size!r} does not fit the body")
        found[str(tensor.get("name"))] = data[offset : offset + size]
        offset += size
    if offset != len(data):
        raise LayoutError(f"{len(data) - offset} bytes follow the last binary tensor")
    return found


def encode_request(
    batch: npt.NDArray[np.uint8], sources: Sequence[Mapping[str, Any] | None], *, input_name: str, top_k: int
) -> tuple[bytes, int]:
    """The request preprocess sends (contracts.md §3): body and JSON header length.

    One UINT8 ``[N,H,W,C]`` input with binary data, ``parameters.top_k``, and ``parameters.sources``
    (one entry or null per image) as a JSON string.
    """
    if batch.dtype != np.uint8 or batch.ndim != 4:
        raise ValueError(f"expected a uint8 [N,H,W,C] batch, got {batch.dtype} {batch.shape}")
    tensor = np.ascontiguousarray(batch).tobytes()
    header = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(batch.shape),
                "datatype": "UINT8",
                "parameters": {"binary_data_size": len(tensor)},
            }
        ],
        "parameters": {
            "top_k": top_k,
            "sources": json.dumps(list(sources), ensure_ascii=False, separators=(",", ":"), default=str),
        },
    }
    return join(header, [tensor])


def encode_answer(doc: Mapping[str, Any], blobs: Sequence[bytes]) -> tuple[bytes, dict[str, str]]:
    """An answer's body and headers: JSON alone, or JSON then the binary outputs in ``doc`` order."""
    if not blobs:
        return dump_json(doc), {"Content-Type": JSON_TYPE}
    body, header_length = join(doc, blobs)
    return body, {"Content-Type": BINARY_TYPE, HEADER_LENGTH: str(header_length)}


def _dtype(datatype: str) -> np.dtype[Any]:
    try:
        return DTYPES[datatype]
    except KeyError:
        raise LayoutError(f"datatype {datatype!r} has no binary form here") from None


def _flat(values: Any) -> Iterator[str | bytes]:
    """The elements of nested lists (or an object array), row-major."""
    if isinstance(values, str | bytes):
        yield values
        return
    for value in values:
        yield from _flat(value)
