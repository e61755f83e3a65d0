"""Test images for preprocess, generated in memory from the photos shipped with scikit-image.

Imported by the preprocess tests and the benchmark (`from tests.data.preprocess_images import ...`).
"""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image


def chelsea() -> Image.Image:
    """The cat photo (451x300, RGB); ImageNet classes 281/282/285 are the expected tabby/tiger/Egyptian cat."""
    from skimage import data

    return Image.fromarray(data.chelsea())


def resize_and_crop(img: Image.Image, resize_shorter: int, size: int) -> np.ndarray:
    """The textbook pipeline on a decoded image: RGB, bicubic resize of the shorter side, centre crop.

    The reference that preprocess's tensors are checked against, and the "full decode" peer of the
    draft-decoding benchmark.
    """
    img = img.convert("RGB")
    w, h = img.size
    scale = resize_shorter / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def encode(img: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    """Encode an image to bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def exif_bytes(
    orientation: int | None = None,
    make: str | None = "Canon",
    model: str | None = "EOS 5D",
    datetime_original: str | None = "2024:05:06 07:08:09",
    gps: tuple[float, float] | None = None,
) -> bytes:
    """An EXIF block with the given tags."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if datetime_original:
        exif.get_ifd(0x8769)[0x9003] = datetime_original
    if gps:
        lat, lon = gps
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(abs(lat))
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(abs(lon))
    return exif.tobytes()


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600 * 100)
    return (Fraction(degrees), Fraction(minutes), Fraction(seconds, 100))


def rotated_chelsea_jpeg() -> bytes:
    """Pixels rotated 90° counter-clockwise + EXIF Orientation 6 ("rotate 90° CW to display"):
    viewers (and preprocess) show the upright cat; ignoring the tag shows it lying on its side."""
    upright = chelsea()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # Pillow's ROTATE_90 is counter-clockwise
    return encode(stored, "JPEG", quality=92, exif=exif_bytes(orientation=6))


def progressive_jpeg() -> bytes:
    return encode(chelsea(), "JPEG", quality=85, progressive=True, optimize=True)


def cmyk_jpeg() -> bytes:
    return encode(chelsea().convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    """16-bit greyscale PNG."""
    grey = np.asarray(chelsea().convert("L")).astype(np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def palette_with_transparency() -> bytes:
    """P-mode PNG whose palette index 0 is transparent (should come out white)."""
    img = chelsea().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    arr = np.asarray(img).copy()
    arr[:, :200] = 0
    out = Image.fromarray(arr, mode="P")
    out.putpalette(img.getpalette() or [])
    return encode(out, "PNG", transparency=0)


def rgba_png() -> bytes:
    """RGBA with a fully transparent left half."""
    rgba = chelsea().convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha[:, : rgba.width // 2] = 0
    rgba.putalpha(Image.fromarray(alpha))
    return encode(rgba, "PNG")


def animated_gif() -> bytes:
    """Two frames: the cat, then solid red (only the first frame must be used)."""
    cat = chelsea()
    red = Image.new("RGB", cat.size, (255, 0, 0))
    return encode(cat, "GIF", save_all=True, append_images=[red], duration=100, loop=0)


def webp() -> bytes:
    return encode(chelsea(), "WEBP", quality=80)


def truncated_jpeg() -> bytes:
    data = encode(chelsea(), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_header_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose IHDR claims width x height (no real pixel data)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def compressed_bomb_png(side: int = 12_000) -> bytes:
    """A real PNG of side x side black pixels: a few hundred KB that would decode to side²·1 bytes."""
    return encode(Image.new("L", (side, side)), "PNG", optimize=False)


def large_photo_jpeg(width: int = 4000, height: int = 3000, quality: int = 90) -> bytes:
    """A 12 MP JPEG made by upscaling chelsea (for draft decoding and the benchmark)."""
    return encode(chelsea().resize((width, height), Image.Resampling.BICUBIC), "JPEG", quality=quality)


def halves_png16(side: int = 6000) -> bytes:
    """A 16-bit greyscale PNG (tens of KB): left half 0x8080 (→ 128), right half 0xFFFF (→ 255)."""
    grey = np.full((side, side), 0x8080, np.uint16)
    grey[:, side // 2 :] = 0xFFFF
    return encode(Image.fromarray(grey), "PNG")


def halves_rgba_png(side: int = 4900, colour: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """An RGBA PNG (tens of KB): left half fully transparent (→ white), right half opaque ``colour``."""
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[:, side // 2 :, 3] = 255
    return encode(Image.fromarray(rgba, "RGBA"), "PNG")


def huge_progressive_jpeg(size: tuple[int, int] = (7200, 5400), subsampling: int = 0) -> bytes:
    """A legal photo whose progressive decode needs more memory than its function has (issue: 258 MiB)."""
    return encode(chelsea().resize(size, Image.Resampling.BILINEAR), "JPEG", quality=90, progressive=True,
                  subsampling=subsampling)
