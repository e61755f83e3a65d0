"""JPEG markers → what libjpeg holds while decoding (preprocess_core.jpeg_layout)."""

from __future__ import annotations

import math

import pytest
from PIL import Image
from preprocess_core import images, jpeg_layout
from preprocess_core.errors import ImageTooLargeError
from preprocess_core.settings import ModelInput

from tests.data import preprocess_images as gen

PHOTO = gen.chelsea()  # 451x300


def blocks(width: int, height: int, h_max: int, v_max: int, sampling: list[tuple[int, int]]) -> int:
    cols, rows = math.ceil(width / (8 * h_max)), math.ceil(height / (8 * v_max))
    return sum(cols * h * rows * v for h, v in sampling)


def test_baseline_needs_no_coefficient_buffer() -> None:
    layout = jpeg_layout.read_layout(gen.encode(PHOTO, "JPEG", quality=90))
    assert layout is not None and not layout.progressive and not layout.multi_scan
    assert (layout.width, layout.height) == PHOTO.size and layout.coefficient_bytes() == 0


@pytest.mark.parametrize(
    ("subsampling", "sampling"),
    [(0, [(1, 1), (1, 1), (1, 1)]), (1, [(2, 1), (1, 1), (1, 1)]), (2, [(2, 2), (1, 1), (1, 1)])],
    ids=["4:4:4", "4:2:2", "4:2:0"],
)
def test_progressive_holds_every_block_of_every_component(subsampling: int, sampling: list[tuple[int, int]]) -> None:
    layout = jpeg_layout.read_layout(gen.encode(PHOTO, "JPEG", progressive=True, subsampling=subsampling))
    assert layout is not None and layout.progressive and layout.multi_scan
    assert list(layout.sampling) == sampling
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    assert layout.coefficient_bytes() == blocks(451, 300, h_max, v_max, sampling) * 128


def test_an_appended_second_image_or_exif_thumbnail_is_not_a_second_scan() -> None:
    thumb = gen.encode(PHOTO.resize((64, 43)), "JPEG")
    with_thumb = gen.encode(PHOTO, "JPEG", exif=gen.exif_bytes(orientation=1))
    for data in (gen.encode(PHOTO, "JPEG") + thumb, with_thumb):
        layout = jpeg_layout.read_layout(data)
        assert layout is not None and not layout.multi_scan


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00", b"\xff\xd8\x00\x00"])
def test_what_is_not_a_readable_jpeg_has_no_layout(data: bytes) -> None:
    assert jpeg_layout.read_layout(data) is None


def test_a_progressive_jpeg_over_the_budget_is_refused_before_decoding() -> None:
    data = gen.encode(PHOTO.resize((1600, 1200), Image.Resampling.BILINEAR), "JPEG", progressive=True, subsampling=0)
    needed = 200 * 150 * 3 * 128  # 11.5 MB: 1600x1200 in 8x8 blocks, three full components
    with pytest.raises(ImageTooLargeError, match=f"{needed} bytes of DCT coefficients"):
        images.open_image(data, 40_000_000, needed - 1)
    # The same photo as a baseline JPEG decodes within the same budget (draft decoding, one row of blocks).
    baseline = gen.encode(PHOTO.resize((1600, 1200)), "JPEG", subsampling=0)
    assert images.prepare(baseline, ModelInput.from_size(224), 40_000_000, max_decoded_bytes=needed - 1).tensor.shape
    assert images.open_image(data, 40_000_000, needed).size == (1600, 1200)


def test_a_sequential_first_scan_without_every_component_means_more_scans() -> None:
    data = bytearray(gen.encode(PHOTO, "JPEG", quality=90))
    sos = data.index(b"\xff\xda")
    assert data[sos + 4] == 3  # Pillow writes one interleaved scan of all three components
    data[sos + 4] = 1  # as a non-interleaved file starts: its first scan holds one component
    layout = jpeg_layout.read_layout(bytes(data))
    assert layout is not None and not layout.progressive and layout.multi_scan
    assert layout.coefficient_bytes() > 0
