"""The model manifest (docs/contracts.md §2): the one reader and writer, and the digests it records.

``vision-model`` (modelbuild) writes ``manifest.json`` (version 2, ``Manifest.to_json``); predict serves
from it (and checks the sha256 of what it loads), preprocess learns the input it must build from it,
and backfill, devstack and the bench read the model's name and version from it. They all read it here.

Two versions are read. Version 1 (no ``manifest_version`` key) is the single-model manifest
``make model`` wrote before the repository existed: one ``input`` with its ``preprocessing``, one
``output``, always a classifier. Version 2 says everything a caller needs: ``task``, ``inputs``,
``preprocessing``, ``outputs``, ``labels`` (classification only), ``artifacts`` per engine,
``provenance`` and the engines' ``agreement``. Both read into the same ``Manifest``; the attributes
the v1 readers use (``input_name``, ``height``, ``resize_shorter``, ``labels_path``, ...) stay.

Every served artifact takes RGB pixels in 0..255 (uint8 or float32) at the model's own size:
normalisation is baked into the artifacts, and ``preprocessing.normalisation`` only records what
was baked (``x' = (x - mean) / std`` per channel, in 0..255 units).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnvision_common.errors import ManifestError, UnknownTaskError

__all__ = [
    "ARTIFACT_KINDS",
    "ENGINE_ARTIFACTS",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "RESAMPLE",
    "RESIZE_POLICIES",
    "TASKS",
    "Artifact",
    "Labels",
    "Manifest",
    "ManifestError",
    "Normalisation",
    "Preprocessing",
    "TensorSpec",
    "UnknownTaskError",
    "default_resize_shorter",
    "file_sha256",
    "labels_from",
    "path_bytes",
    "path_sha256",
    "primary_artifact",
    "tree_files",
    "tree_sha256",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
TASKS = ("classification", "regression", "raw")
ARTIFACT_KINDS = ("tflite", "onnx", "savedmodel")
"""Artifact kinds, in the order that picks the primary one (the one ``digest`` names)."""
ENGINE_ARTIFACTS = {"litert": "tflite", "onnxruntime": "onnx", "tensorflow": "savedmodel"}
"""Engine -> the artifact kind it serves, unless ``engines.<engine>.artifact`` says otherwise."""
RESIZE_POLICIES = ("shorter", "stretch")
"""``shorter``: scale the shorter side to ``resize_shorter_to`` keeping the aspect ratio, then crop the
centre to the input size (square inputs). ``stretch``: scale straight to the input size."""
RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos")
_LAYOUTS = ("NHWC",)
_DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_RESIZE_RATIO = 256 / 224


def default_resize_shorter(size: int) -> int:
    """ImageNet's convention: the shorter side before a centre crop of ``size`` is ``size * 256 / 224``."""
    return round(size * _RESIZE_RATIO)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: name, shape (None: any size), dtype (numpy name), layout for images."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str | None = None
    activation: str | None = None
    """Outputs only: ``softmax`` when the values are probabilities (classification), else None."""

    def to_doc(self) -> dict[str, Any]:
        """The JSON object of this tensor."""
        doc: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.layout:
            doc["layout"] = self.layout
        if self.activation:
            doc["activation"] = self.activation
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> TensorSpec:
        """Read a tensor object; ValueError/KeyError/TypeError when it is not one."""
        shape = tuple(None if d is None or int(d) < 0 else int(d) for d in doc["shape"])
        dtype = str(doc.get("dtype", "float32"))
        if dtype not in _DTYPES:
            raise ValueError(f"tensor {doc['name']!r}: dtype {dtype!r} is not one of {list(_DTYPES)}")
        activation = doc.get("activation")
        return cls(
            name=str(doc["name"]),
            shape=shape,
            dtype=dtype,
            layout=str(doc["layout"]) if doc.get("layout") else None,
            activation=str(activation) if activation else None,
        )


@dataclass(frozen=True)
class Normalisation:
    """``x' = (x - mean) / std`` per RGB channel on 0..255 pixels, applied INSIDE the served artifacts."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        """True when the model takes the pixels as they are."""
        return self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)

    def to_doc(self) -> dict[str, Any]:
        """The JSON object (``in_model`` is always true: the decision of docs/contracts.md §2)."""
        return {"in_model": True, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Normalisation:
        """Read the object; a normalisation left to the caller is refused."""
        if not doc:
            return cls()
        if doc.get("in_model") is not True:
            raise ValueError(
                "preprocessing.normalisation.in_model must be true: served artifacts take 0..255 pixels "
                "(`vision-model import --mean/--std` bakes a model's normalisation in)"
            )
        mean, std = (tuple(float(v) for v in doc[k]) for k in ("mean", "std"))
        if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
            raise ValueError("preprocessing.normalisation needs 3 means and 3 non-zero stds")
        return cls(mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]))


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input (docs/contracts.md §2)."""

    resize: str = "shorter"
    """One of RESIZE_POLICIES."""
    resize_shorter_to: int | None = None
    """``shorter`` only: the shorter side after resizing (None: ``default_resize_shorter`` of the crop)."""
    center_crop: int | None = None
    """``shorter`` only: the side of the centre crop (the input's height and width)."""
    resample: str = "bicubic"
    normalisation: Normalisation = field(default_factory=Normalisation)

    def to_doc(self) -> dict[str, Any]:
        """The JSON object."""
        doc: dict[str, Any] = {"resize": self.resize}
        if self.resize == "shorter":
            doc["resize_shorter_to"] = self.resize_shorter_to
            doc["center_crop"] = self.center_crop
        doc["resample"] = self.resample
        doc["normalisation"] = self.normalisation.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], height: int | None, width: int | None) -> Preprocessing:
        """Read and check the object against the input's size."""
        resize = str(doc.get("resize", "shorter"))
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"preprocessing.resize {resize!r} is not one of {list(RESIZE_POLICIES)}")
        resample = str(doc.get("resample", "bicubic"))
        if resample not in RESAMPLE:
            raise ValueError(f"preprocessing.resample {resample!r} is not one of {list(RESAMPLE)}")
        crop = shorter = None
        if resize == "shorter":
            if height is None or height != width:
                raise ValueError(f"preprocessing.resize 'shorter' needs a square input, not {height}x{width}")
            crop = int(doc.get("center_crop") or height)
            shorter = int(doc.get("resize_shorter_to") or default_resize_shorter(crop))
            if crop != height or shorter < crop:
                raise ValueError(
                    f"preprocessing: center_crop {crop} must be the input size {height} and "
                    f"resize_shorter_to {shorter} at least that"
                )
        return cls(resize, shorter, crop, resample, Normalisation.from_doc(doc.get("normalisation")))


@dataclass(frozen=True)
class Labels:
    """The class names file of a classifier: a JSON list of strings, in output index order."""

    path: str
    sha256: str
    count: int | None = None
    source: str | None = None

    def to_doc(self) -> dict[str, Any]:
        """The JSON object."""
        doc: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "count": self.count}
        if self.source:
            doc["source"] = self.source
        return doc


@dataclass(frozen=True)
class Artifact:
    """One file (tflite, onnx) or directory tree (savedmodel) of the model."""

    path: str
    sha256: str
    bytes: int | None = None
    """Size: the file's, or the sum of the tree's files."""
    signature: str | None = None
    """savedmodel: the signature served (``serving_default``)."""
    opset: int | None = None
    """onnx: the ONNX opset the graph was written for."""

    def to_doc(self) -> dict[str, Any]:
        """The JSON object (only the keys that apply)."""
        doc: dict[str, Any] = {"path": self.path, "sha256": self.sha256}
        for key in ("bytes", "signature", "opset"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Artifact:
        """Read an artifact object."""
        return cls(
            path=str(doc["path"]),
            sha256=str(doc["sha256"]),
            bytes=int(doc["bytes"]) if doc.get("bytes") is not None else None,
            signature=str(doc["signature"]) if doc.get("signature") else None,
            opset=int(doc["opset"]) if doc.get("opset") is not None else None,
        )


def primary_artifact(artifacts: Mapping[str, Artifact]) -> str:
    """The kind ``digest`` names: the first of ARTIFACT_KINDS present (tflite when there is one)."""
    for kind in ARTIFACT_KINDS:
        if kind in artifacts:
            return kind
    raise ValueError("the manifest lists no artifact")


@dataclass(frozen=True)
class Manifest:
    """What the functions and tools read from manifest.json (both versions)."""

    name: str
    version: str
    digest: str
    """``sha256:<hex>`` of the primary artifact (``primary_artifact``): what answers name."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    task: str = "classification"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: Labels | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Where the model comes from: source file and sha256, build tools and their versions."""
    agreement: dict[str, Any] = field(default_factory=dict)
    """How closely the artifacts' engines agreed when the version was made."""
    build: dict[str, Any] = field(default_factory=dict)
    """Not part of the contract: the build's input fingerprint (lets a rebuild be skipped)."""
    manifest_version: int = MANIFEST_VERSION

    # -- what the v1 readers use ------------------------------------------------------------------

    @property
    def input(self) -> TensorSpec:
        """The image input (a served model has exactly one)."""
        return self.inputs[0]

    @property
    def input_name(self) -> str:
        """Name of the image input tensor."""
        return self.input.name

    @property
    def height(self) -> int:
        """Input height in pixels."""
        return _dim(self.input, 1)

    @property
    def width(self) -> int:
        """Input width in pixels."""
        return _dim(self.input, 2)

    @property
    def channels(self) -> int:
        """Input channels (3: RGB)."""
        return _dim(self.input, 3)

    @property
    def resize_shorter(self) -> int | None:
        """``preprocessing.resize_shorter_to``: shorter side before the centre crop (None: not given)."""
        return self.preprocessing.resize_shorter_to

    @property
    def center_crop(self) -> int | None:
        """``preprocessing.center_crop`` (None: no crop)."""
        return self.preprocessing.center_crop

    @property
    def labels_path(self) -> str:
        """The labels file ('' for a model without labels: regression, raw)."""
        return self.labels.path if self.labels else ""

    @property
    def labels_sha256(self) -> str:
        """The labels file's sha256 ('' without labels)."""
        return self.labels.sha256 if self.labels else ""

    @property
    def model_id(self) -> str:
        """``name@version``: how results and logs name the model."""
        return f"{self.name}@{self.version}"

    def artifact_for(self, engine: str) -> str:
        """The artifact kind an engine serves (``engines.<engine>.artifact``, else ENGINE_ARTIFACTS)."""
        return str(self.engines.get(engine, {}).get("artifact", ENGINE_ARTIFACTS.get(engine, engine)))

    # -- reading ---------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """Parse manifest.json text (v1 or v2); ManifestError when it is not the documented shape."""
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("the manifest is not a JSON object")
            version = doc.get("manifest_version", 1)
            if version == 1:
                return _from_v1(doc)
            if version == MANIFEST_VERSION:
                return _from_v2(doc)
            raise ValueError(f"manifest_version {version!r} is not 1 or 2 (a newer vision-model wrote it?)")
        except UnknownTaskError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ManifestError(f"not a valid model manifest: {what}") from exc

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read a manifest file, or the ``manifest.json`` of a model folder."""
        file = path / MANIFEST_NAME if path.is_dir() else path
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read {file}: {exc.strerror or exc}") from exc
        try:
            return cls.from_json(raw)
        except ManifestError as exc:
            raise type(exc)(f"{file}: {exc}") from exc

    # -- writing (version 2 only) ----------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        """The version 2 JSON document."""
        doc: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "digest": self.digest,
            "created": self.created,
            "inputs": [t.to_doc() for t in self.inputs],
            "preprocessing": self.preprocessing.to_doc(),
            "outputs": [t.to_doc() for t in self.outputs],
        }
        if self.labels:
            doc["labels"] = self.labels.to_doc()
        doc["artifacts"] = {kind: a.to_doc() for kind, a in self.artifacts.items()}
        doc["engines"] = self.engines
        doc["provenance"] = self.provenance
        doc["agreement"] = self.agreement
        if self.build:
            doc["build"] = self.build
        return doc

    def to_json(self) -> str:
        """The version 2 ``manifest.json`` text; it reads back to an equal Manifest."""
        text = json.dumps(self.to_doc(), indent=2) + "\n"
        Manifest.from_json(text)  # a writer must never publish what the reader refuses
        return text


def _dim(spec: TensorSpec, axis: int) -> int:
    value = spec.shape[axis]
    if value is None:
        raise ManifestError(f"input {spec.name!r} has no fixed size on axis {axis}: {list(spec.shape)}")
    return value


def _check_image_input(spec: TensorSpec) -> None:
    if len(spec.shape) != 4 or (spec.layout or "NHWC") not in _LAYOUTS:
        raise ValueError(f"input shape {list(spec.shape)} is not NHWC")
    if spec.shape[3] != 3 or spec.shape[1] is None or spec.shape[2] is None:
        raise ValueError(f"input {spec.name!r} must be [N,H,W,3] with a fixed H and W, not {list(spec.shape)}")


def _from_v1(doc: Mapping[str, Any]) -> Manifest:
    """The pre-repository manifest: one image input, one classifier output, always labels."""
    spec = doc["input"]
    shape = spec["shape"]
    if len(shape) != 4 or spec.get("layout", "NHWC") != "NHWC":
        raise ValueError(f"input shape {shape} is not NHWC")
    inp = TensorSpec(str(spec.get("name") or "images"), tuple(None if d is None else int(d) for d in shape),
                     str(spec.get("dtype", "float32")), "NHWC")
    prep = spec.get("preprocessing") or {}
    out = doc.get("output")
    outputs = (TensorSpec.from_doc(out),) if out else ()
    return Manifest(
        name=str(doc["name"]),
        version=str(doc["version"]),
        digest=str(doc["digest"]),
        inputs=(inp,),
        outputs=outputs,
        task="classification",
        preprocessing=Preprocessing(
            resize="shorter",
            resize_shorter_to=int(prep["resize_shorter_to"]) if prep.get("resize_shorter_to") else None,
            center_crop=int(prep["center_crop"]) if prep.get("center_crop") else None,
            resample=str(prep.get("resample", "bicubic")),
        ),
        labels=Labels(str(doc["labels"]["path"]), str(doc["labels"]["sha256"]), doc["labels"].get("count")),
        artifacts={str(kind): Artifact.from_doc(a) for kind, a in doc["artifacts"].items()},
        engines={str(k): dict(v) for k, v in doc.get("engines", {}).items()},
        created=str(doc.get("created", "")),
        provenance={k: doc[k] for k in ("source", "published_top1") if k in doc},
        build=dict(doc.get("build") or {}),
        manifest_version=1,
    )


def _from_v2(doc: Mapping[str, Any]) -> Manifest:
    task = str(doc["task"])
    if task not in TASKS:
        raise UnknownTaskError(
            f"not a valid model manifest: task {task!r} is not one of {list(TASKS)} "
            "(re-import the model with `vision-model import --task ...`)"
        )
    inputs = tuple(TensorSpec.from_doc(t) for t in doc["inputs"])
    if len(inputs) != 1:
        raise ValueError(f"a served model takes exactly one image input, the manifest lists {len(inputs)}")
    _check_image_input(inputs[0])
    outputs = tuple(TensorSpec.from_doc(t) for t in doc["outputs"])
    if not outputs:
        raise ValueError("the manifest lists no output")
    labels = None
    if task == "classification":
        raw = doc["labels"]
        labels = Labels(str(raw["path"]), str(raw["sha256"]), int(raw["count"]), raw.get("source"))
        if len(outputs) != 1 or outputs[0].shape[-1] != labels.count:
            raise ValueError(f"a classifier has one output of {labels.count} classes (labels.count)")
    artifacts = {str(kind): Artifact.from_doc(a) for kind, a in doc["artifacts"].items()}
    unknown = sorted(set(artifacts) - set(ARTIFACT_KINDS))
    if unknown:
        raise ValueError(f"artifact kinds {unknown} are not among {list(ARTIFACT_KINDS)}")
    for kind, artifact in artifacts.items():
        if not _SHA256.fullmatch(artifact.sha256):
            raise ValueError(f"artifacts.{kind}.sha256 is not 64 lowercase hex digits")
    digest = str(doc["digest"])
    if digest != f"sha256:{artifacts[primary_artifact(artifacts)].sha256}":
        raise ValueError(f"digest is not sha256:<the {primary_artifact(artifacts)} artifact's sha256>")
    engines = {str(k): dict(v) for k, v in doc.get("engines", {}).items()}
    for engine, conf in engines.items():
        if conf.get("artifact", ENGINE_ARTIFACTS.get(engine)) not in artifacts:
            raise ValueError(f"engines.{engine} serves an artifact the manifest does not list")
    inp = inputs[0]
    return Manifest(
        name=str(doc["name"]),
        version=str(doc["version"]),
        digest=digest,
        inputs=inputs,
        outputs=outputs,
        task=task,
        preprocessing=Preprocessing.from_doc(doc["preprocessing"], inp.shape[1], inp.shape[2]),
        labels=labels,
        artifacts=artifacts,
        engines=engines,
        created=str(doc.get("created", "")),
        provenance=dict(doc.get("provenance") or {}),
        agreement=dict(doc.get("agreement") or {}),
        build=dict(doc.get("build") or {}),
    )


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root: str | Path) -> list[str]:
    """Return the POSIX relative paths of every regular file under root, sorted."""
    base = Path(root)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def tree_sha256(root: str | Path) -> str:
    """Return the hex sha256 of a directory tree.

    For each regular file in sorted POSIX relative-path order the hash is fed
    ``<relpath> NUL <size in decimal> NUL <contents>``; the size makes the encoding unambiguous,
    so moving bytes between files or renaming a file changes the digest.
    """
    base = Path(root)
    h = hashlib.sha256()
    for rel in tree_files(base):
        data = (base / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def path_sha256(path: Path) -> str:
    """Return the sha256 of a file or of a directory tree."""
    return tree_sha256(path) if path.is_dir() else file_sha256(path)


def path_bytes(path: Path) -> int:
    """Return the size of a file, or the sum of a tree's files."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def labels_from(values: Sequence[str]) -> bytes:
    """The labels file's bytes for a list of class names (one JSON string per line)."""
    return (json.dumps(list(values), indent=0) + "\n").encode()
