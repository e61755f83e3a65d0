"""Raw NumPy ``.npy`` bodies (``Content-Type: application/x-npy``), answered with native JSON."""

from __future__ import annotations

import io

import numpy as np

from ..errors import RequestError
from .base import JSON_TYPE, Answer, DecodedRequest, Encoded, dump_json

MAGIC = b"\x93NUMPY"
CONTENT_TYPE = "application/x-npy"


def decode(body: bytes) -> DecodedRequest:
    """Load the array (pickles are refused); options cannot travel in a .npy body, defaults apply."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RequestError(f"the body is not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise RequestError("the body must hold one .npy array, not an .npz archive")
    return DecodedRequest(fmt="npy", images=array)


def encode(answer: Answer, request: DecodedRequest) -> Encoded:
    """Return the native JSON answer."""
    return Encoded(dump_json(answer.native()), {"Content-Type": JSON_TYPE})
