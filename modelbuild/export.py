"""Build, check and export the model directory: Keras -> SavedModel -> float32 TFLite + manifest.

The directory is assembled in a temporary sibling and renamed into place, so readers see either
the previous complete model or the new one, never a half-written one. A lock file serialises
concurrent builds (several engineers and test runs may call ``make model`` at once).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelbuild import efficientnet_lite
from modelbuild.legacy_pth import read_state_dict
from modelbuild.manifest import (
    LABELS_NAME,
    LITERT_THREADS,
    MANIFEST_NAME,
    SAVEDMODEL_NAME,
    SIGNATURE,
    TFLITE_NAME,
    BuildInputs,
    build_inputs,
    imagenet_labels,
    make_manifest,
    read_manifest,
    verify_model_dir,
)
from modelbuild.photos import SamplePhoto, preprocess, sample_photos

if TYPE_CHECKING:
    import keras

__all__ = ["MAX_TFLITE_DIFF", "BuildError", "build", "is_up_to_date", "litert_predict"]

MAX_TFLITE_DIFF = 1e-4
Log = Callable[[str], None]


class BuildError(RuntimeError):
    """The built model failed a correctness check; nothing was installed."""


def _print(line: str) -> None:
    """Print a progress line immediately (make output is often piped)."""
    print(line, flush=True)


class _Stages:
    """Log each stage with its duration and the total."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._start = self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        """Log that a stage finished."""
        now = time.perf_counter()
        self._log(f"[modelbuild] {stage:<32} {now - self._last:6.2f} s  (total {now - self._start:6.2f} s)")
        self._last = now


def is_up_to_date(out: Path, inputs: BuildInputs) -> bool:
    """Return True when out holds an intact model built from exactly these inputs."""
    manifest = read_manifest(out)
    if manifest is None or manifest.get("build", {}).get("fingerprint") != inputs.fingerprint:
        return False
    return not verify_model_dir(out, manifest)


def _photo_batch(photos: list[SamplePhoto]) -> npt.NDArray[np.float32]:
    """Preprocess the photos into one float32 [N,224,224,3] batch in 0..255."""
    return np.stack([preprocess(p.image()) for p in photos]).astype(np.float32)


def _check_predictions(where: str, photos: list[SamplePhoto], probs: npt.NDArray[Any]) -> None:
    """Raise BuildError unless every photo's expectations hold."""
    problems = [msg for photo, row in zip(photos, probs, strict=True) for msg in photo.check(row)]
    if problems:
        raise BuildError(f"{where} predictions are wrong: " + "; ".join(problems))


def litert_predict(tflite_path: Path, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Run a batch through the .tflite file with ai_edge_litert's serving_default signature."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path), num_threads=LITERT_THREADS)
    runner = interpreter.get_signature_runner(SIGNATURE)
    result: npt.NDArray[np.float32] = runner(images=batch)[efficientnet_lite.OUTPUT_NAME]
    return result


def _export_savedmodel(model: keras.Model, target: Path) -> None:
    """Write a SavedModel whose serving_default maps ``images`` to ``probabilities``."""
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    size = efficientnet_lite.IMAGE_SIZE

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {efficientnet_lite.OUTPUT_NAME: model(images, training=False)}

    spec = tf.TensorSpec([None, size, size, 3], tf.float32, name=efficientnet_lite.INPUT_NAME)
    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[spec])
    archive.write_out(str(target), verbose=False)


def _convert_tflite(savedmodel: Path, target: Path) -> None:
    """Convert the SavedModel to a float32 .tflite flatbuffer."""
    import tensorflow as tf

    # from_saved_model, not from_keras_model: the latter prints the whole signature to stdout.
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[SIGNATURE])
    target.write_bytes(converter.convert())


def _assemble(tmp: Path, inputs: BuildInputs, stages: _Stages, log: Log) -> None:
    """Build the model, check it and write every artifact and the manifest into tmp."""
    state_dict = read_state_dict(inputs.weights)
    stages.done("read weights (no torch)")
    model = efficientnet_lite.build_model()
    efficientnet_lite.load_state_dict(model, state_dict)
    stages.done("build Keras + load weights")

    photos = sample_photos()
    batch = _photo_batch(photos)
    keras_probs = np.asarray(model.predict_on_batch(batch))
    _check_predictions("Keras", photos, keras_probs)
    stages.done(f"check Keras on {len(photos)} photos")

    _export_savedmodel(model, tmp / SAVEDMODEL_NAME)
    stages.done("export SavedModel")
    _convert_tflite(tmp / SAVEDMODEL_NAME, tmp / TFLITE_NAME)
    stages.done("convert TFLite float32")

    lite_probs = litert_predict(tmp / TFLITE_NAME, batch)
    diff = float(np.max(np.abs(lite_probs - keras_probs)))
    if not diff < MAX_TFLITE_DIFF:
        raise BuildError(f"TFLite differs from Keras by {diff:.2e} (limit {MAX_TFLITE_DIFF:.0e})")
    _check_predictions("TFLite", photos, lite_probs)
    stages.done(f"verify LiteRT (max diff {diff:.1e})")

    labels = imagenet_labels()
    (tmp / LABELS_NAME).write_text(json.dumps(labels, indent=0) + "\n", "utf-8")
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = make_manifest(tmp, inputs, created)
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    problems = verify_model_dir(tmp, manifest)
    if problems:
        raise BuildError("manifest does not match the files: " + "; ".join(problems))
    stages.done("labels + manifest")
    for row, photo in zip(lite_probs, photos, strict=True):
        top = np.argsort(-row)[:5]
        log(f"[modelbuild]   {photo.name:<16} " + ", ".join(f"{labels[i]} {row[i]:.3f}" for i in top))


@contextmanager
def _build_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive per-output lock for the duration of a build."""
    # The lock lives in the temp dir so the function folder (an fn build context) stays clean.
    key = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"modelbuild-{key}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(out: Path) -> None:
    """Delete temporary directories an interrupted build left next to out."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _install(tmp: Path, out: Path) -> None:
    """Move the finished tmp directory to out, replacing any previous model."""
    tmp.chmod(0o755)  # mkdtemp makes 0700; the fn build context and other users need to read it
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}.tmp"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)


def build(out: Path, *, force: bool = False, log: Log = _print) -> bool:
    """Build the model directory at out unless it is up to date; return True when it was (re)built.

    Raises:
        BuildError: a check failed (wrong predictions, TFLite drift, manifest mismatch).
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stages = _Stages(log)
    with _build_lock(out):
        inputs = build_inputs()
        if not force and is_up_to_date(out, inputs):
            log(f"model up to date ({out})")
            return False
        stages.done("hash inputs")
        _remove_leftovers(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            _assemble(tmp, inputs, stages, log)
            _install(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    stages.done(f"installed {out.name}/")
    return True
