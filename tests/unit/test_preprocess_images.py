"""Image normalisation: formats, modes, orientation, draft decoding, refusals; EXIF metadata."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from preprocess_core import images, metadata
from preprocess_core.errors import CorruptImageError, ImageError, ImageTooLargeError
from preprocess_core.settings import ModelInput

from tests.data import preprocess_images as gen

MODEL = ModelInput.from_size(224)
BUDGET = 40_000_000


def reference(img: Image.Image, model: ModelInput = MODEL) -> np.ndarray:
    """The textbook pipeline: exif_transpose, RGB, resize shorter side, centre crop."""
    return gen.resize_and_crop(ImageOps.exif_transpose(img), model.resize_shorter, model.size)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_plain_jpeg_matches_reference_pipeline() -> None:
    data = gen.encode(gen.chelsea(), "JPEG", quality=95)
    out = images.prepare(data, MODEL, BUDGET)
    assert out.tensor.shape == (224, 224, 3) and out.tensor.dtype == np.uint8
    # The reference rounds sizes and crop offsets to whole pixels (sub-pixel shifts on fur): close, not equal.
    assert mean_abs_diff(out.tensor, reference(Image.open(io.BytesIO(data)))) < 6.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_equals_exif_transpose_first(orientation: int) -> None:
    # A non-symmetric image, so that a wrong rotation or flip shows.
    data = gen.encode(gen.chelsea(), "PNG", exif=gen.exif_bytes(orientation=orientation))
    out = images.prepare(data, MODEL, BUDGET)
    assert out.orientation == orientation
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if orientation != 1:
        assert upright.getexif().get(0x0112) is None
    expected = images.to_tensor(upright, MODEL)
    assert expected.orientation == 1
    assert mean_abs_diff(out.tensor, expected.tensor) < 0.5
    if orientation != 1:
        assert mean_abs_diff(out.tensor, images.to_tensor(gen.chelsea(), MODEL).tensor) > 10


def test_rotated_photo_comes_out_upright() -> None:
    upright = images.prepare(gen.encode(gen.chelsea(), "JPEG", quality=92), MODEL, BUDGET).tensor
    rotated = images.prepare(gen.rotated_chelsea_jpeg(), MODEL, BUDGET)
    assert rotated.orientation == 6
    assert mean_abs_diff(rotated.tensor, upright) < 4.0
    # Without applying the orientation it would be very different.
    assert mean_abs_diff(np.rot90(rotated.tensor), upright) > 20.0


def test_progressive_jpeg() -> None:
    out = images.prepare(gen.progressive_jpeg(), MODEL, BUDGET)
    assert out.tensor.shape == (224, 224, 3)


def test_cmyk_jpeg_is_converted() -> None:
    data = gen.cmyk_jpeg()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = images.prepare(data, MODEL, BUDGET)
    assert mean_abs_diff(out.tensor, reference(gen.chelsea())) < 10.0


def test_16_bit_png_is_scaled_not_clipped() -> None:
    data = gen.png16()
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = images.prepare(data, MODEL, BUDGET).tensor
    expected = reference(gen.chelsea().convert("L"))
    assert mean_abs_diff(out, expected) < 6.0
    assert (out[..., 0] == out[..., 1]).all()  # grey → equal channels


def test_palette_transparency_becomes_white() -> None:
    out = images.prepare(gen.palette_with_transparency(), MODEL, BUDGET).tensor
    # Columns 0..199 of the 451x300 image are transparent: the crop starts at column 94, so the
    # first ~90 output columns are white.
    assert out[:, :60].min() >= 250
    assert out[:, 150:].std() > 20


def test_rgba_alpha_over_white() -> None:
    out = images.prepare(gen.rgba_png(), MODEL, BUDGET).tensor
    assert out[:, :80].min() >= 250 and out[:, 150:].std() > 20


@pytest.mark.parametrize("mode", ["L", "LA", "1", "P", "I", "F", "RGBA", "YCbCr"])
def test_every_mode_to_rgb(mode: str) -> None:
    out = images.to_tensor(gen.chelsea().convert(mode), MODEL)
    assert out.tensor.shape == (224, 224, 3) and out.tensor.dtype == np.uint8


def test_animated_gif_uses_first_frame() -> None:
    data = gen.animated_gif()
    img = images.open_image(data, BUDGET)
    assert images.is_animated(img)
    out = images.to_tensor(img, MODEL).tensor
    red = np.array([255, 0, 0])
    assert np.abs(out.reshape(-1, 3).mean(axis=0) - red).sum() > 100  # not the red second frame


def test_webp() -> None:
    assert images.prepare(gen.webp(), MODEL, BUDGET).tensor.shape == (224, 224, 3)


def test_large_jpeg_uses_draft_and_stays_close_to_full_decode() -> None:
    data = gen.large_photo_jpeg(2400, 1800)
    drafted = images.prepare(data, MODEL, BUDGET)
    full = images.prepare(data, MODEL, BUDGET, use_draft=False)
    assert drafted.draft_scale == 4 and full.draft_scale == 1  # 1800/4 = 450 >= 256 > 1800/8
    assert mean_abs_diff(drafted.tensor, full.tensor) < 3.0


def test_small_image_is_upscaled() -> None:
    small = gen.encode(gen.chelsea().resize((60, 40)), "PNG")
    assert images.prepare(small, MODEL, BUDGET).tensor.shape == (224, 224, 3)


def test_other_model_sizes() -> None:
    model = ModelInput.from_size(160)
    assert model.resize_shorter == 183
    assert images.prepare(gen.webp(), model, BUDGET).tensor.shape == (160, 160, 3)


# --- memory: large non-JPEG images are never converted at full size ---------------------------

FUNC_DIR = Path(__file__).resolve().parents[2] / "functions" / "preprocess"
DEFAULT_DECODED_BUDGET = 100_000_000  # Settings.max_decoded_bytes
_RSS_CHILD = """
import json, sys
import numpy as np
from preprocess_core import images
from preprocess_core.settings import ModelInput
data = open(sys.argv[1], "rb").read()
out = images.prepare(data, ModelInput.from_size(224), 40_000_000, max_decoded_bytes=int(sys.argv[2]))
np.save(sys.argv[3], out.tensor)
status = open("/proc/self/status").read().splitlines()
print(json.dumps({k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status) if k in ("VmHWM", "VmRSS")}))
"""


def _prepare_in_child(tmp_path: Path, data: bytes) -> tuple[np.ndarray, int]:
    """Run images.prepare in a fresh process; return its tensor and peak RSS (VmHWM) in MB."""
    src, npy = tmp_path / "image.bin", tmp_path / "tensor.npy"
    src.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(src), str(DEFAULT_DECODED_BUDGET), str(npy)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(FUNC_DIR), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(npy), json.loads(done.stdout)["VmHWM"] // 1024


@pytest.mark.slow
def test_36_mp_16_bit_png_stays_small_in_memory(tmp_path: Path) -> None:
    # 6000x6000 16-bit grey: a ~80 KB file, 72 MB decoded (under the 100 MB budget). Converting it
    # at full size (float64 copies) peaked at ~770 MB; reducing first and `>> 8` stays near 110 MB.
    data = gen.halves_png16(6000)
    assert len(data) < 200_000 and Image.open(io.BytesIO(data)).mode == "I;16"
    tensor, peak_mb = _prepare_in_child(tmp_path, data)
    assert peak_mb < 200, f"peak RSS {peak_mb} MB"
    assert tensor.shape == (224, 224, 3) and (tensor[..., 0] == tensor[..., 2]).all()
    assert (tensor[:, :100] == 128).all() and (tensor[:, 124:] == 255).all()  # scaled, not clipped


@pytest.mark.slow
def test_near_budget_rgba_png_stays_small_in_memory(tmp_path: Path) -> None:
    # 4900x4900 RGBA: 96 MB decoded, just under the budget; it used to be converted at full size.
    data = gen.halves_rgba_png(4900)
    tensor, peak_mb = _prepare_in_child(tmp_path, data)
    assert peak_mb < 200, f"peak RSS {peak_mb} MB"
    assert (tensor[:, :100] == 255).all()  # transparent → white
    assert (np.abs(tensor[:, 124:].astype(int) - [200, 30, 60]) <= 1).all()


def test_decoded_bytes_budget_refuses_before_decoding() -> None:
    data = gen.halves_rgba_png(6000)  # 36 MP < MAX_PIXELS, but 144 MB decoded
    img = images.open_image(data, BUDGET)
    assert images.decoded_bytes(img) == 6000 * 6000 * 4
    with pytest.raises(ImageTooLargeError) as err:
        images.to_tensor(img, MODEL, max_decoded_bytes=DEFAULT_DECODED_BUDGET)
    assert err.value.code == "image_too_large" and "MAX_DECODED_BYTES" in err.value.message
    assert img.tile  # refused before a single pixel was decoded
    # Checked at open already for PNG: reading its EXIF (service does, before to_tensor) decodes it.
    with pytest.raises(ImageTooLargeError):
        images.open_image(data, BUDGET, DEFAULT_DECODED_BUDGET)
    # JPEG draft decoding counts at the drafted size: a 12 MP photo needs ~1/64 of its full size.
    jpeg = images.open_image(gen.large_photo_jpeg(), BUDGET)
    assert images.to_tensor(jpeg, MODEL, max_decoded_bytes=4000 * 3000 * 4 // 60).draft_scale == 8


def test_strip_conversion_matches_whole_image_conversion() -> None:
    # Converting + reducing in strips must equal converting the whole image first.
    base = gen.chelsea().resize((1800, 1200))
    grey = np.asarray(base.convert("L"))
    high_depth = {
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
        "F": Image.fromarray(grey.astype(np.float32) / 255.0),
    }
    for mode in ("P", "RGBA", "CMYK", "I;16", "LA", "F"):
        img = high_depth.get(mode) or base.convert(mode)
        assert img.mode == mode
        strips = images.to_tensor(img, MODEL).tensor
        reference_img = base.convert("L").convert("RGB") if mode in high_depth else img.convert("RGB")
        expected = images.to_tensor(reference_img, MODEL).tensor
        assert mean_abs_diff(strips, expected) < 1.0, mode


# --- refusals ---------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    with pytest.raises(ImageError) as err:
        images.prepare(b"", MODEL, BUDGET)
    assert err.value.code == "not_an_image" and err.value.status == 415


@pytest.mark.parametrize("data", [b"hello world", b"%PDF-1.4\n", b"\x00" * 100, b'{"a": 1}'])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageError) as err:
        images.prepare(data, MODEL, BUDGET)
    assert err.value.code == "not_an_image"


def test_disallowed_format_is_refused() -> None:
    data = gen.encode(gen.chelsea(), "PPM")
    with pytest.raises(ImageError):
        images.prepare(data, MODEL, BUDGET)


def test_truncated_jpeg() -> None:
    with pytest.raises(CorruptImageError) as err:
        images.prepare(gen.truncated_jpeg(), MODEL, BUDGET)
    assert err.value.status == 415 and err.value.code == "corrupt_image"


@pytest.mark.parametrize("side", [100_000, 9_000])
def test_header_bomb_refused_before_decoding(side: int) -> None:
    data = gen.png_header_bomb(side, side)
    assert len(data) < 100
    with pytest.raises(ImageTooLargeError) as err:
        images.prepare(data, MODEL, BUDGET)
    assert err.value.status == 413 and err.value.code == "image_too_large"


def test_compressed_bomb_refused() -> None:
    data = gen.compressed_bomb_png(12_000)  # 144 MP of zeros
    assert len(data) < 1_000_000
    with pytest.raises(ImageTooLargeError):
        images.prepare(data, MODEL, BUDGET)


def test_pixel_budget_is_configurable() -> None:
    data = gen.encode(gen.chelsea(), "PNG")
    with pytest.raises(ImageTooLargeError):
        images.prepare(data, MODEL, 451 * 300 - 1)
    assert images.prepare(data, MODEL, 451 * 300).tensor.shape == (224, 224, 3)


# --- metadata ---------------------------------------------------------------------------------


def test_exif_fields_and_gps_policy() -> None:
    data = gen.encode(gen.chelsea(), "JPEG", exif=gen.exif_bytes(orientation=6, gps=(48.858222, -2.2945)))
    img = Image.open(io.BytesIO(data))
    exif = metadata.read_exif(img)
    assert exif.datetime_original == "2024:05:06 07:08:09"
    assert (exif.make, exif.model, exif.orientation) == ("Canon", "EOS 5D", 6)
    assert exif.gps is not None and abs(exif.gps[0] - 48.858222) < 1e-4 and abs(exif.gps[1] + 2.2945) < 1e-4
    assert exif.to_dict(store_gps=False)["gps"] is None
    gps = exif.to_dict(store_gps=True)["gps"]
    assert gps == {"lat": exif.gps[0], "lon": exif.gps[1]}


def test_no_exif() -> None:
    img = Image.open(io.BytesIO(gen.encode(gen.chelsea(), "PNG")))
    assert metadata.read_exif(img).to_dict(True) == {
        "datetime_original": None,
        "make": None,
        "model": None,
        "orientation": None,
        "gps": None,
    }


def test_image_info() -> None:
    data = gen.webp()
    info = metadata.image_info(Image.open(io.BytesIO(data)), data, animated=False)
    assert (info["format"], info["width"], info["height"]) == ("WEBP", 451, 300)
    assert len(info["sha256"]) == 64 and info["bytes"] == len(data)
