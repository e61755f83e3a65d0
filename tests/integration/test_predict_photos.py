"""Real photos shipped in packages are classified correctly, and the LiteRT and TensorFlow engines agree.

Expectations per photo come from modelbuild.photos (model.md §3): chelsea top-1 in {281,282,285},
coffee 967 with p > 0.9, camera 872, motorcycle_left 665, china 698, grace_hopper top-5 has 652
and 667, rocket top-5 has 657 and 812.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from predict_core.model import load_model
from predict_core.settings import Settings
from predict_core.topk import top_k

from modelbuild import photos as photos_mod

pytestmark = pytest.mark.integration


def _no_s3() -> Any:
    raise AssertionError("a local model must not touch object storage")


@pytest.fixture(scope="module")
def photo_batch(model_dir: Path) -> tuple[list[Any], np.ndarray]:
    photos = photos_mod.sample_photos()
    batch = np.stack([photos_mod.preprocess(p.image()) for p in photos]).astype(np.float32)
    return photos, batch


@pytest.fixture(scope="module")
def litert_probs(model_dir: Path, photo_batch: tuple[list[Any], np.ndarray]) -> np.ndarray:
    model = load_model(Settings.from_env({}, model_dir), _no_s3)
    assert model.engine.name == "litert"
    return model.engine.predict(photo_batch[1])


def test_litert_classifies_the_sample_photos(
    photo_batch: tuple[list[Any], np.ndarray], litert_probs: np.ndarray
) -> None:
    photos, _ = photo_batch
    problems = [msg for photo, probs in zip(photos, litert_probs, strict=True) for msg in photo.check(probs)]
    assert not problems, problems
    np.testing.assert_allclose(litert_probs.sum(axis=1), 1.0, atol=1e-4)


def test_labels_are_readable(model_dir: Path, litert_probs: np.ndarray) -> None:
    model = load_model(Settings.from_env({"MODEL_VERIFY": "false"}, model_dir), _no_s3)
    rows = top_k(litert_probs, 1, model.labels)
    names = {row[0].label for row in rows}
    assert {"espresso", "tripod", "moped"} <= names


def test_batch_and_single_image_agree(model_dir: Path, photo_batch: tuple[list[Any], np.ndarray]) -> None:
    model = load_model(Settings.from_env({}, model_dir), _no_s3)
    batch = photo_batch[1][:4]
    together = model.engine.predict(batch)
    alone = np.concatenate([model.engine.predict(batch[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.slow
def test_tensorflow_savedmodel_agrees_with_litert(
    model_dir: Path, photo_batch: tuple[list[Any], np.ndarray], litert_probs: np.ndarray
) -> None:
    pytest.importorskip("tensorflow")
    model = load_model(Settings.from_env({"MODEL_ENGINE": "tensorflow"}, model_dir), _no_s3)
    assert model.engine.name == "tensorflow"
    tf_probs = model.engine.predict(photo_batch[1])
    assert np.array_equal(tf_probs.argmax(axis=1), litert_probs.argmax(axis=1))
    assert float(np.abs(tf_probs - litert_probs).max()) < 1e-4
