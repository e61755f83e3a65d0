"""Metadata sent with each image to predict, which copies it into the result document.

Shape (docs/contracts.md §5): ``{"source": {...}, "image": {...}, "exif": {...}}``.
GPS latitude/longitude are included only with ``STORE_GPS=true`` (privacy: off by default);
otherwise ``exif.gps`` is ``null``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from PIL import Image

TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
_MAX_TEXT = 128


@dataclass(frozen=True)
class Exif:
    """The EXIF facts we keep."""

    datetime_original: str | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    gps: tuple[float, float] | None = None

    def to_dict(self, store_gps: bool) -> dict[str, Any]:
        """JSON form; GPS only when allowed."""
        gps = {"lat": self.gps[0], "lon": self.gps[1]} if (store_gps and self.gps) else None
        return {
            "datetime_original": self.datetime_original,
            "make": self.make,
            "model": self.model,
            "orientation": self.orientation,
            "gps": gps,
        }


def read_exif(img: Image.Image) -> Exif:
    """Read capture time, camera, orientation and GPS; any unreadable part is just missing."""
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF must never fail the image
        return Exif()
    try:
        sub = exif.get_ifd(IFD_EXIF)
    except Exception:  # noqa: BLE001
        sub = {}
    orientation = exif.get(TAG_ORIENTATION)
    return Exif(
        datetime_original=_text(sub.get(TAG_DATETIME_ORIGINAL)) or _text(exif.get(TAG_DATETIME)),
        make=_text(exif.get(TAG_MAKE)),
        model=_text(exif.get(TAG_MODEL)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        gps=_gps(exif),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:_MAX_TEXT] or None


def _gps(exif: Image.Exif) -> tuple[float, float] | None:
    try:
        gps = exif.get_ifd(IFD_GPS)
        lat = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "S")
        lon = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF), "W")
    except Exception:  # noqa: BLE001
        return None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return (lat, lon)


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        return None
    d, m, s = (float(v) for v in value)
    result = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper().startswith(negative):
        result = -result
    return round(result, 6)


def image_info(img: Image.Image, data: bytes, animated: bool) -> dict[str, Any]:
    """Format, stored size (before EXIF orientation), byte hash, frames policy."""
    width, height = img.size
    return {
        "format": img.format,
        "width": width,
        "height": height,
        "mode": img.mode,
        "animated": animated,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def source_info(**fields: Any) -> dict[str, Any]:
    """The `source` block, keeping the contract's keys even when unknown (null)."""
    keys = ("bucket", "key", "etag", "size", "content_type", "event_id", "event_time", "event_type")
    out: dict[str, Any] = {k: fields.get(k) for k in keys}
    out.update({k: v for k, v in fields.items() if k not in keys and v is not None})
    return out
