"""Image bytes → the model's uint8 tensor ``[size, size, 3]``, safely.

Order of work (each step is cheap before the next expensive one):
1. ``open_image``: parse the header only; refuse formats outside ``ALLOWED_FORMATS``, empty bodies
   and images whose header announces more than ``max_pixels`` (decompression bombs) — no pixel
   is decoded before that check.
2. ``to_tensor``: multi-frame images (animated GIF/WebP/PNG, multi-page TIFF, MPO) use their
   **first frame**, always; JPEGs are decoded in draft mode (libjpeg DCT scaling by 1/2, 1/4 or 1/8)
   to the smallest scale whose shorter side still covers the resize target; every mode becomes
   RGB (alpha composited over white, CMYK/YCbCr/palette converted, 16-bit and float scaled to
   8 bits); resize of the centred square crop (shorter side → size*256/224, crop size) with
   bicubic filtering, in one resampling pass; the EXIF orientation is applied last, on the small
   square (a centred square crop commutes with rotations and flips, and this is the same result
   as ``ImageOps.exif_transpose`` first).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from .errors import CorruptImageError, ImageError, ImageTooLargeError
from .settings import ModelInput

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
"""Formats we parse; everything else is 415 (smaller attack surface than all Pillow plugins); MPO opens as JPEG."""

ORIENTATION_TAG = 0x0112
# EXIF orientation → the transpose that makes the image upright (same table as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError)

Tensor = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Prepared:
    """The tensor plus facts about how it was made."""

    tensor: Tensor
    draft_scale: int
    """1 when decoded at full size, 2/4/8 when JPEG draft decoding scaled down."""
    orientation: int


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header, check format and pixel budget; no pixel data is decoded yet."""
    if not data:
        raise ImageError("empty body: zero bytes is not an image")
    try:
        with warnings.catch_warnings():
            # We apply our own, stricter budget below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image header announces too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"not an image (or not one of {', '.join(ALLOWED_FORMATS)})") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"image header cannot be read: {exc}") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"image header has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{width}x{height} = {width * height} pixels is over the budget of {max_pixels} (MAX_PIXELS)"
        )
    return img


def is_animated(img: Image.Image) -> bool:
    """True for multi-frame images (only the first frame is used)."""
    try:
        return bool(getattr(img, "is_animated", False))
    except _DECODE_ERRORS:
        return False


def orientation_of(img: Image.Image) -> int:
    """EXIF orientation 1..8 (1 when absent or invalid)."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_tensor(img: Image.Image, model: ModelInput, *, use_draft: bool = True) -> Prepared:
    """Decode (first frame), normalise the mode, resize + centre-crop, orient; uint8 [S,S,3]."""
    orientation = orientation_of(img)
    original_width = img.size[0]
    try:
        if getattr(img, "tell", lambda: 0)() != 0:
            img.seek(0)
        if use_draft and img.format in ("JPEG", "MPO"):
            target = model.resize_shorter
            img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (target, target))
        img.load()
        draft_scale = max(1, round(original_width / img.size[0]))
        img = _normalise_mode(img)
        img = _resize_crop(img, model)
    except (ImageTooLargeError, ImageError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"image data cannot be decoded: {exc}") from exc
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    if img.mode != "RGB":
        img = img.convert("RGB")
    tensor = np.asarray(img, dtype=np.uint8)
    return Prepared(tensor=np.ascontiguousarray(tensor), draft_scale=draft_scale, orientation=orientation)


def prepare(data: bytes, model: ModelInput, max_pixels: int, *, use_draft: bool = True) -> Prepared:
    """Bytes → tensor in one call (open + check + decode)."""
    return to_tensor(open_image(data, max_pixels), model, use_draft=use_draft)


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB, RGBA (composited later) or L."""
    mode = img.mode
    if mode in ("RGB", "L", "RGBA"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("PA", "LA", "La", "RGBa"):
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(img)
    if mode.startswith(("RGB", "BGR")):
        return img.convert("RGB")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale → 8-bit L."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        values = np.nan_to_num(arr.astype(np.float64))
        scale = 255.0 if values.size and float(values.max()) <= 1.0 else 1.0
        out = np.clip(values * scale, 0, 255)
    else:
        out = np.clip(arr.astype(np.float64) / 257.0, 0, 255)
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


def _resize_crop(img: Image.Image, model: ModelInput) -> Image.Image:
    """Shorter side → resize_shorter, centre crop → size, as one resampling of the crop box."""
    width, height = img.size
    side = min(width, height) * model.size / model.resize_shorter
    left = (width - side) / 2
    top = (height - side) / 2
    box = (left, top, left + side, top + side)
    out = img.resize((model.size, model.size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    if out.mode == "RGBA":
        background = Image.new("RGB", out.size, (255, 255, 255))
        background.paste(out, mask=out.getchannel("A"))
        return background
    return out
