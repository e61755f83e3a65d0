"""Image bytes → the model's uint8 tensor ``[size, size, 3]``, safely.

Order of work (each step is cheap before the next expensive one):
1. ``open_image``: parse the header only; refuse formats outside ``ALLOWED_FORMATS``, empty bodies
   and images whose header announces more than ``max_pixels`` (decompression bombs) — no pixel
   is decoded before that check.
2. ``to_tensor``: multi-frame images (animated GIF/WebP/PNG, multi-page TIFF, MPO) use their
   **first frame**, always; JPEGs are decoded in draft mode (libjpeg DCT scaling by 1/2, 1/4 or 1/8)
   to the smallest scale whose shorter side still covers the resize target; the bytes the decoded
   frame will take in memory (Pillow's pixel size: 1 byte for L/P/1, 2 for 16-bit grey, 4 for
   every multi-band and 32-bit mode) are checked against ``max_decoded_bytes`` before decoding
   (formats without draft decoding hold the whole frame: a 70 KB PNG can be 144 MB of pixels), and
   for progressive or multi-scan JPEGs the whole-image coefficient buffer libjpeg needs whatever
   the draft scale (``jpeg_layout``; checked in ``open_image`` from the markers);
3. the region needed for the centre crop is then converted and reduced **strip by strip**: each
   strip of rows becomes RGB or L in 8 bits (alpha composited over white, CMYK/YCbCr/palette
   converted, 16-bit scaled with integer ``>> 8``, float scaled) and is box-reduced by an integer
   factor, so the full-size image is never copied in another mode; one bicubic resampling of the
   crop box (shorter side → size*256/224, crop size) follows; the EXIF orientation is applied
   last, on the small square (a centred square crop commutes with rotations and flips, and this
   is the same result as ``ImageOps.exif_transpose`` first).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from . import jpeg_layout
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
# Bytes per pixel of Pillow's storage (every multi-band mode is stored as 4 bytes per pixel).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_DRAFT_FORMATS = ("JPEG", "MPO")
_REDUCING_GAP = 3.0
"""Box-reduce until the crop is at least this many times the model size, then resample (as Pillow)."""
_STRIP_PIXELS = 1 << 20
"""Pixels per strip while converting + reducing (~4 MB in RGBA)."""
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError)

Tensor = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Prepared:
    """The tensor plus facts about how it was made."""

    tensor: Tensor
    draft_scale: int
    """1 when decoded at full size, 2/4/8 when JPEG draft decoding scaled down."""
    orientation: int


def open_image(data: bytes, max_pixels: int, max_decoded_bytes: int | None = None) -> Image.Image:
    """Parse the header, check format, pixel and decoded-bytes budgets; no pixel data is decoded yet.

    The decoded-bytes budget is checked here for formats without draft decoding, because reading
    their metadata may decode them (Pillow's PNG ``getexif`` loads the image to find an ``eXIf``
    chunk after the pixels); for JPEGs the coefficient buffer of progressive / multi-scan files is
    checked here, and the output in ``to_tensor`` at its drafted size.
    """
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
    if img.format not in _DRAFT_FORMATS:
        _check_decoded(img, max_decoded_bytes)
    else:
        _check_jpeg_buffer(data, img, max_decoded_bytes)
    return img


def decode_cost(img: Image.Image, data: bytes) -> int:
    """Bytes the decode of ``img`` will hold at its peak, known from the header (before decoding).

    JPEGs: the whole-image coefficient buffer of progressive / multi-scan files (the drafted output
    is small); other formats: the whole decoded frame.
    """
    if img.format in _DRAFT_FORMATS:
        layout = jpeg_layout.read_layout(data)
        return layout.coefficient_bytes() if layout is not None else 0
    return decoded_bytes(img)


def _check_jpeg_buffer(data: bytes, img: Image.Image, max_decoded_bytes: int | None) -> None:
    """Progressive / multi-scan JPEGs hold all their DCT coefficients while decoding (jpeg_layout)."""
    layout = jpeg_layout.read_layout(data)
    if layout is None or max_decoded_bytes is None:
        return
    if layout.width != img.size[0] or layout.height != img.size[1]:  # height 0 + DNL marker, MPO oddities
        layout = replace(layout, width=img.size[0], height=img.size[1])
    needed = layout.coefficient_bytes()
    if needed > max_decoded_bytes:
        kind = "progressive" if layout.progressive else "multi-scan"
        raise ImageTooLargeError(
            f"{img.size[0]}x{img.size[1]} {kind} JPEG needs {needed} bytes of DCT coefficients to decode, "
            f"over the budget of {max_decoded_bytes} (MAX_DECODED_BYTES); a baseline JPEG of the same size fits"
        )


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


def decoded_bytes(img: Image.Image) -> int:
    """Bytes Pillow allocates to hold ``img`` decoded (at its current, possibly drafted, size)."""
    width, height = img.size
    return width * height * _PIXEL_BYTES.get(img.mode, 4)


def to_tensor(
    img: Image.Image, model: ModelInput, *, use_draft: bool = True, max_decoded_bytes: int | None = None
) -> Prepared:
    """Decode (first frame), normalise the mode, resize + centre-crop, orient; uint8 [S,S,3]."""
    if img.format not in _DRAFT_FORMATS:
        _check_decoded(img, max_decoded_bytes)  # before reading EXIF, which may decode (PNG)
    orientation = orientation_of(img)
    original_width = img.size[0]
    try:
        if getattr(img, "tell", lambda: 0)() != 0:
            img.seek(0)
        if use_draft and img.format in _DRAFT_FORMATS:
            target = model.resize_shorter
            img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (target, target))
        _check_decoded(img, max_decoded_bytes)
        img.load()
        draft_scale = max(1, round(original_width / img.size[0]))
        img = _resize_crop(img, model)
    except (ImageTooLargeError, ImageError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except MemoryError as exc:
        raise ImageTooLargeError(f"image does not fit in memory: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"image data cannot be decoded: {exc}") from exc
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
    if img.mode != "RGB":
        img = img.convert("RGB")
    tensor = np.asarray(img, dtype=np.uint8)
    return Prepared(tensor=np.ascontiguousarray(tensor), draft_scale=draft_scale, orientation=orientation)


def prepare(
    data: bytes, model: ModelInput, max_pixels: int, *, use_draft: bool = True, max_decoded_bytes: int | None = None
) -> Prepared:
    """Bytes → tensor in one call (open + check + decode)."""
    img = open_image(data, max_pixels, max_decoded_bytes)
    return to_tensor(img, model, use_draft=use_draft, max_decoded_bytes=max_decoded_bytes)


def _check_decoded(img: Image.Image, max_decoded_bytes: int | None) -> None:
    needed = decoded_bytes(img)
    if max_decoded_bytes is not None and needed > max_decoded_bytes:
        raise ImageTooLargeError(
            f"{img.size[0]}x{img.size[1]} {img.mode} decodes to {needed} bytes, over the budget of "
            f"{max_decoded_bytes} (MAX_DECODED_BYTES)"
        )


def _resize_crop(img: Image.Image, model: ModelInput) -> Image.Image:
    """Shorter side → resize_shorter, centre crop → size, as one resampling of the crop box.

    The region under the crop box (plus the bicubic support) is first converted to 8-bit RGB/L and
    box-reduced by an integer factor strip by strip (what Pillow's ``reducing_gap`` does, but
    without converting the whole image first), then resampled once.
    """
    width, height = img.size
    side = min(width, height) * model.size / model.resize_shorter
    left = (width - side) / 2
    top = (height - side) / 2
    factor = max(1, int(side / model.size / _REDUCING_GAP))
    support = 2 * side / model.size + factor  # bicubic support in source pixels, plus one reduce cell
    x0, y0 = max(0, math.floor(left - support)), max(0, math.floor(top - support))
    x1, y1 = min(width, math.ceil(left + side + support)), min(height, math.ceil(top + side + support))
    region = _convert_reduced(img, (x0, y0, x1, y1), factor)
    box = ((left - x0) / factor, (top - y0) / factor, (left + side - x0) / factor, (top + side - y0) / factor)
    return region.resize((model.size, model.size), Image.Resampling.BICUBIC, box=box)


def _convert_reduced(img: Image.Image, region: tuple[int, int, int, int], factor: int) -> Image.Image:
    """8-bit RGB or L of ``img[region]`` reduced by ``factor``, converted in strips of rows."""
    x0, y0, x1, y1 = region
    width = x1 - x0
    rows = max(factor, _STRIP_PIXELS // max(1, width) // factor * factor)
    float_scale = _float_scale(img) if img.mode == "F" else 1.0
    out: Image.Image | None = None
    for top in range(y0, y1, rows):
        strip = _to_8bit(img.crop((x0, top, x1, min(y1, top + rows))), float_scale)
        if factor > 1:
            strip = strip.reduce(factor)
        if out is None:
            out = Image.new(strip.mode, (strip.width, -(-(y1 - y0) // factor)))
        out.paste(strip, (0, (top - y0) // factor))
    assert out is not None  # the region is never empty
    return out


def _float_scale(img: Image.Image) -> float:
    """Float images in 0..1 are scaled to 0..255 (decided on the whole image, not per strip)."""
    low, high = img.getextrema()
    return 255.0 if isinstance(high, float) and math.isfinite(high) and high <= 1.0 else 1.0


def _to_8bit(img: Image.Image, float_scale: float = 1.0) -> Image.Image:
    """Any Pillow mode → 8-bit RGB or L; alpha is composited over white here, before resampling.

    Compositing first and averaging after is the same as Pillow's premultiplied-alpha resampling
    followed by compositing (both are linear in the premultiplied colours).
    """
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(img, float_scale)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode != "RGBA":
        return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, BGR;*
    if img.mode == "RGB":
        return img
    background = Image.new("RGB", img.size, (255, 255, 255))
    background.paste(img, mask=img.getchannel("A"))
    return background


def _high_depth_to_l(img: Image.Image, float_scale: float) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale → 8-bit L (integer maths for integers)."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        values = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0) * float_scale
        out = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    elif arr.dtype.itemsize == 2:
        out = (arr.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    else:
        out = (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
    return Image.fromarray(out, mode="L")
