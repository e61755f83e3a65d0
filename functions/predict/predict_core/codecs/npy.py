"""Raw NumPy ``.npy`` bodies (``Content-Type: application/x-npy``), answered with native JSON."""

from __future__ import annotations

import io
import math

import numpy as np

from ..errors import RequestError
from .base import Answer, DecodedRequest, Encoded, json_encoded

MAGIC = b"\x93NUMPY"
CONTENT_TYPE = "application/x-npy"


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def decode(body: bytes) -> DecodedRequest:
    """Read the array where it lies in the body (no copy; pickles are refused); defaults apply.

    ``np.load`` would copy the data out of the body: with MAX_BATCH float32 images that is 38 MB more
    at the peak of a call. Format versions other than 1.0/2.0 (3.0: UTF-8 field names) go through it.
    """
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            return DecodedRequest(fmt="npy", images=_load(body))
        shape, fortran_order, dtype = reader(stream)
    except (ValueError, OSError, EOFError) as exc:
        raise RequestError(f"the body is not a readable .npy array: {exc}") from exc
    if dtype.hasobject:
        raise RequestError("the body is not a readable .npy array: object arrays (pickles) are refused")
    count = math.prod(shape)
    offset = stream.tell()
    if len(body) - offset < count * dtype.itemsize:
        raise RequestError(
            f"the body is not a readable .npy array: {list(shape)} {dtype} needs {count * dtype.itemsize} "
            f"bytes of data, the body has {len(body) - offset}"
        )
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return DecodedRequest(fmt="npy", images=flat.reshape(shape, order="F" if fortran_order else "C"))


def _load(body: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RequestError(f"the body is not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise RequestError("the body must hold one .npy array, not an .npz archive")
    return array


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Return the native JSON answer."""
    return json_encoded(answer.native())
