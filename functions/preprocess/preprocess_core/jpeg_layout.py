"""What libjpeg will hold in memory to decode a JPEG, read from its markers before any pixel is decoded.

A baseline (single-scan) JPEG is decoded one row of blocks at a time, and with draft decoding
(DCT scaling) its output is small: a 39 MP photo costs ~10 MB. A *progressive* JPEG, or any file
with more than one scan, cannot be: libjpeg keeps the DCT coefficients of the whole image
(``jdcoefct.c``: a full-image buffer whenever ``has_multiple_scans``), 64 coefficients of 2 bytes per
8x8 block of every component, whatever the output scale. Measured on a 7200x5400 photo: progressive
4:4:4 took 226 MiB more than baseline (this model says 233 MB), progressive 4:2:0 116 MiB (117 MB).
That buffer must be in the decode budget, or a legal upload kills the container.

Only the markers up to the first scan header are parsed: no entropy-coded data is read, so the
check costs microseconds whatever the file size. A progressive file always has several scans; a
sequential one has several exactly when its first scan does not hold every component.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RST0-7, SOI: no length field
_SOS, _EOI = 0xDA, 0xD9
_COEFFICIENT_BYTES = 64 * 2
"""Bytes per 8x8 block in libjpeg's coefficient buffer (64 JCOEF of 16 bits)."""


@dataclass(frozen=True)
class JpegLayout:
    """The frame header and scan structure of a JPEG."""

    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]
    """(horizontal, vertical) sampling factor of each component."""
    progressive: bool
    multi_scan: bool

    def coefficient_bytes(self) -> int:
        """Bytes of the whole-image coefficient buffer libjpeg allocates (0 for single-scan files)."""
        if not (self.progressive or self.multi_scan) or not self.sampling:
            return 0
        h_max = max(h for h, _ in self.sampling)
        v_max = max(v for _, v in self.sampling)
        mcu_cols = math.ceil(self.width / (8 * h_max))
        mcu_rows = math.ceil(self.height / (8 * v_max))
        blocks = sum(mcu_cols * h * mcu_rows * v for h, v in self.sampling)
        return blocks * _COEFFICIENT_BYTES


def read_layout(data: bytes) -> JpegLayout | None:
    """Parse the markers up to the first scan; None when the data is not a JPEG we can read."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, end = 2, len(data)
    frame: tuple[int, int, tuple[tuple[int, int], ...], bool] | None = None
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        segment = data[pos + 4 : pos + 2 + length]
        if marker in _SOF and frame is None and len(segment) >= 6:
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            count = segment[5]
            comps = segment[6 : 6 + 3 * count]
            sampling = tuple((comps[i + 1] >> 4, comps[i + 1] & 0x0F) for i in range(0, len(comps) - 2, 3))
            if any(h == 0 or v == 0 for h, v in sampling):
                return None
            frame = (width, height, sampling, marker in _PROGRESSIVE)
        if marker == _SOS:
            if frame is None or not segment:
                return None
            width, height, sampling, progressive = frame
            # Sequential mode puts each component in exactly one scan (ITU T.81 B.2.3): a first scan
            # that holds fewer components than the frame means more scans follow.
            multi_scan = progressive or segment[0] < len(sampling)
            return JpegLayout(width, height, sampling, progressive, multi_scan)
        if marker == _EOI:
            return None
        pos += 2 + length
    return None
