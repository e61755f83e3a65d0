"""Bundled sample photos: they load offline, preprocess to the model's input and check predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelbuild.photos import SamplePhoto, preprocess, sample_photos, write_jpegs


def test_every_sample_photo_is_a_readable_rgb_file() -> None:
    photos = sample_photos()
    assert [p.name for p in photos] == [
        "chelsea", "coffee", "camera", "motorcycle_left", "astronaut",
        "rocket", "grace_hopper", "china", "flower",
    ]  # fmt: skip
    for photo in photos:
        assert photo.path.is_file(), photo.path
        image = photo.image()
        assert image.mode == "RGB" and min(image.size) >= 256


def test_sample_photos_selects_by_name_and_rejects_unknown_names() -> None:
    assert [p.name for p in sample_photos(["coffee", "chelsea"])] == ["coffee", "chelsea"]
    with pytest.raises(KeyError, match="nope"):
        sample_photos(["nope"])


def test_preprocess_resizes_short_side_then_centre_crops() -> None:
    # GIVEN a 600x400 image whose left and right thirds differ from the middle
    src = np.zeros((400, 600, 3), dtype=np.uint8)
    src[:, 200:400] = 255
    out = preprocess(Image.fromarray(src))
    # THEN the result is 224x224 RGB uint8 taken from the centre: 400 -> 256 scales 600 -> 384,
    # the crop spans x 80..304 of it, the white band spans 128..256, i.e. crop columns 48..176
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[:, 60:164].min() == 255
    assert out[:, :36].max() == 0 and out[:, 190:].max() == 0


def test_preprocess_accepts_greyscale() -> None:
    out = preprocess(Image.new("L", (300, 500), color=77))
    assert out.shape == (224, 224, 3) and (out == 77).all()


def test_write_jpegs_writes_decodable_files(tmp_path: Path) -> None:
    paths = write_jpegs(tmp_path / "up", sample_photos(["camera", "china"]))
    assert [p.name for p in paths] == ["camera.jpg", "china.jpg"]
    for path in paths:
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.mode == "RGB"


def _one_hot(index: int, score: float = 0.95) -> np.ndarray:
    probs = np.full(1000, (1 - score) / 999, dtype=np.float32)
    probs[index] = score
    return probs


def test_check_accepts_right_and_flags_wrong_predictions() -> None:
    coffee, rocket = sample_photos(["coffee", "rocket"])
    assert coffee.check(_one_hot(967)) == []
    assert "top-1 968" in coffee.check(_one_hot(968))[0]
    assert "score" in coffee.check(_one_hot(967, score=0.5))[0]
    probs = _one_hot(657, 0.5)
    probs[812] = 0.3
    assert rocket.check(probs) == []
    assert "lacks [812]" in rocket.check(_one_hot(657))[0]


def test_photo_without_expectations_accepts_anything() -> None:
    photo = SamplePhoto("x", "skimage", "data/astronaut.png", None, None)
    assert photo.check(_one_hot(3)) == []
