"""Real sample photos bundled in installed packages, with robust ImageNet expectations.

Sources (all offline): scikit-image's ``skimage/data``, matplotlib's ``grace_hopper.jpg`` and
scikit-learn's ``china.jpg`` / ``flower.jpg``. Expectations are the ones that hold for both
EfficientNet-Lite0 and MobileNetV2 (both candidate models were run on every photo). Packages are
located with ``importlib.util.find_spec`` so that nothing heavy (sklearn, matplotlib) is imported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.manifest import Preprocessing
from PIL import Image

__all__ = [
    "SamplePhoto",
    "check_batch",
    "prepare",
    "preprocess",
    "sample_photos",
    "write_jpegs",
]

RESIZE_SHORTER_TO = 256
CENTER_CROP = 224


def _package_file(package: str, relative: str) -> Path:
    """Return a data file inside an installed package without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative


@dataclass(frozen=True)
class SamplePhoto:
    """A bundled photo and what a correct ImageNet classifier must say about it."""

    name: str
    """Short name, also the stem of the JPEG written by ``write_jpegs``."""
    package: str
    """Installed package that ships the file."""
    relative_path: str
    """Path of the file inside the package."""
    expected_top1: frozenset[int] | None
    """The top-1 index must be one of these (None: no assertion)."""
    expected_top5: frozenset[int] | None
    """Every one of these indices must be in the top-5 (None: no assertion)."""
    min_top1_score: float | None = None
    """The top-1 probability must exceed this (None: no assertion)."""

    @property
    def path(self) -> Path:
        """Return the photo's file path inside its package."""
        return _package_file(self.package, self.relative_path)

    def image(self) -> Image.Image:
        """Open the photo as an RGB PIL image (camera.png is greyscale on disk)."""
        with Image.open(self.path) as im:
            return im.convert("RGB")

    def check(self, probabilities: npt.NDArray[Any]) -> list[str]:
        """Return the expectations a [1000] probability vector violates (empty when it is right)."""
        order = np.argsort(-np.asarray(probabilities))
        top1, top5 = int(order[0]), {int(i) for i in order[:5]}
        problems: list[str] = []
        if self.expected_top1 is not None and top1 not in self.expected_top1:
            problems.append(f"{self.name}: top-1 {top1} not in {sorted(self.expected_top1)}")
        if self.expected_top5 is not None and not self.expected_top5 <= top5:
            problems.append(f"{self.name}: top-5 {sorted(top5)} lacks {sorted(self.expected_top5 - top5)}")
        score = float(probabilities[top1])
        if self.min_top1_score is not None and score <= self.min_top1_score:
            problems.append(f"{self.name}: top-1 score {score:.3f} <= {self.min_top1_score}")
        return problems


_SKIMAGE = "skimage"
_PHOTOS: tuple[SamplePhoto, ...] = (
    SamplePhoto("chelsea", _SKIMAGE, "data/chelsea.png", frozenset({281, 282, 285}), None),
    SamplePhoto("coffee", _SKIMAGE, "data/coffee.png", frozenset({967}), None, min_top1_score=0.9),
    SamplePhoto("camera", _SKIMAGE, "data/camera.png", frozenset({872}), None),
    SamplePhoto("motorcycle_left", _SKIMAGE, "data/motorcycle_left.png", frozenset({665}), None),
    SamplePhoto("astronaut", _SKIMAGE, "data/astronaut.png", None, None),
    SamplePhoto("rocket", _SKIMAGE, "data/rocket.jpg", None, frozenset({657, 812})),
    SamplePhoto(
        "grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", None, frozenset({652, 667})
    ),
    SamplePhoto("china", "sklearn", "datasets/images/china.jpg", frozenset({698}), None),
    SamplePhoto("flower", "sklearn", "datasets/images/flower.jpg", None, None),
)


def sample_photos(names: Sequence[str] | None = None) -> list[SamplePhoto]:
    """Return the bundled sample photos, optionally only those named, in a stable order."""
    if names is None:
        return list(_PHOTOS)
    by_name = {p.name: p for p in _PHOTOS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown sample photos {unknown}; known: {sorted(by_name)}")
    return [by_name[n] for n in names]


_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def prepare(image: Image.Image, prep: Preprocessing, height: int, width: int) -> npt.NDArray[np.uint8]:
    """Apply a manifest's preprocessing (docs/contracts.md §2): the model's [height,width,3] uint8 input."""
    rgb = image.convert("RGB")
    resample = _RESAMPLE[prep.resample]
    if prep.resize == "stretch":
        return np.asarray(rgb.resize((width, height), resample), dtype=np.uint8)
    crop = prep.center_crop or height
    w, h = rgb.size
    scale = (prep.resize_shorter_to or crop) / min(w, h)
    size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
    resized = rgb.resize(size, resample)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    return np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def preprocess(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Resize the short side to 256 (bicubic) and centre-crop 224: EfficientNet-Lite0's [224,224,3] uint8 input."""
    prep = Preprocessing("shorter", RESIZE_SHORTER_TO, CENTER_CROP, "bicubic")
    return prepare(image, prep, CENTER_CROP, CENTER_CROP)


def write_jpegs(
    directory: str | Path, photos: Sequence[SamplePhoto] | None = None, quality: int = 95
) -> list[Path]:
    """Write the photos as RGB JPEG files ``<name>.jpg`` into directory and return their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for photo in _PHOTOS if photos is None else photos:
        target = out / f"{photo.name}.jpg"
        photo.image().save(target, format="JPEG", quality=quality)
        written.append(target)
    return written


def check_batch(prep: Preprocessing, height: int, width: int, dtype: str = "float32") -> npt.NDArray[Any]:
    """The inputs build, import and verify run every artifact on: the sample photos, preprocessed.

    Without the packages that ship them (skimage, matplotlib, scikit-learn), four seeded random
    images of the same size stand in, so a check still runs every engine on the same batch.
    """
    try:
        batch = np.stack([prepare(p.image(), prep, height, width) for p in _PHOTOS])
    except (FileNotFoundError, OSError):
        batch = np.random.default_rng(0).integers(0, 256, (4, height, width, 3), dtype=np.uint8)
    return batch.astype(dtype)
