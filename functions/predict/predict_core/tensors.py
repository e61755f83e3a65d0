"""Check a decoded image tensor against the model's input and turn it into the engine's batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import DTypeError, ShapeError, ValueRangeError

ACCEPTED = (np.dtype(np.uint8), np.dtype(np.float32))


def to_batch(images: npt.NDArray[Any], height: int, width: int, channels: int, max_batch: int) -> npt.NDArray[Any]:
    """Return a checked uint8 or float32 [N,H,W,C] batch in 0..255; a single [H,W,C] image becomes N=1.

    uint8 stays uint8: the engine converts slice by slice, so a batch is never held twice as float32.
    """
    expected = (height, width, channels)
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ShapeError(
            f"images must be [N,{height},{width},{channels}] (or one [{height},{width},{channels}]), "
            f"got {list(images.shape)}"
        )
    n = images.shape[0]
    if not 1 <= n <= max_batch:
        raise ShapeError(f"batch size must be between 1 and {max_batch} (MAX_BATCH), got {n}")
    if images.dtype not in ACCEPTED:
        raise DTypeError(f"images must be uint8 or float32 (values 0..255), got {images.dtype}")
    if images.dtype == np.uint8:
        return images
    if not np.isfinite(images).all():
        raise ValueRangeError("float32 images contain NaN or infinity")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 255.0:
        raise ValueRangeError(f"float32 images must be in 0..255 (not normalised), got {low:g}..{high:g}")
    return images
