"""``vision-model import``: turn a user's model into a new version of a repository.

Reads a Keras ``.keras``/``.h5`` file, a SavedModel folder, a ``.tflite`` or an ``.onnx`` file; checks
that it loads and runs; writes the artifacts its format can be exported to (Keras and SavedModel:
SavedModel + TFLite + ONNX; TFLite: TFLite + ONNX; ONNX: ONNX), each taking ``[N,H,W,3]`` float32
0..255 pixels with the model's normalisation, NCHW transpose and softmax baked in (``export.Wrap``);
checks that every artifact computes what the source model computes on the sample photos; writes
the manifest and publishes the version atomically. A ``.tflite`` cannot be rewritten, so it is
refused when it would need a wrap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.errors import ArtifactLoadError, ModelImportError, UnknownTaskError
from fnvision_common.manifest import (
    MANIFEST_NAME,
    RESAMPLE,
    RESIZE_POLICIES,
    TASKS,
    Artifact,
    Labels,
    Manifest,
    Normalisation,
    Preprocessing,
    TensorSpec,
    default_resize_shorter,
    file_sha256,
    labels_from,
    path_sha256,
    primary_artifact,
)
from fnvision_common.repository import LocalRepository, check_folder, check_name, check_version, next_version

from modelbuild import agreement, export
from modelbuild.build import describe
from modelbuild.catalog import LABELS_NAME, tool_versions
from modelbuild.photos import check_batch

__all__ = ["FORMATS", "ImportOptions", "detect_format", "import_model"]

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
_TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/]*")
Log = Callable[[str], None]
Outputs = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class ImportOptions:
    """What ``vision-model import`` was told about the model."""

    name: str
    task: str
    version: str | None = None
    labels: Path | None = None
    input_size: tuple[int, int] | None = None
    """(height, width) when the model does not fix it (or to confirm it)."""
    resize: str = "shorter"
    resize_shorter_to: int | None = None
    resample: str = "bicubic"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    softmax: bool = False
    layout: str | None = None
    """NHWC or NCHW; None: NCHW when the input is [N,3,H,W] with H, W != 3."""
    signature: str = export.SIGNATURE
    """SavedModel sources: the signature to serve."""

    def normalisation(self) -> Normalisation:
        """The normalisation to bake in (identity unless --mean/--std)."""
        mean = self.mean or (0.0, 0.0, 0.0)
        std = self.std or (1.0, 1.0, 1.0)
        if any(s == 0 for s in std):
            raise ModelImportError("--std values must not be 0")
        return Normalisation(mean, std)


@dataclass
class _Source:
    """A loaded source model: its one input, its outputs and how to run it (reference outputs)."""

    fmt: str
    input_name: str
    input_shape: tuple[int | None, ...]
    input_dtype: str
    output_names: list[str]
    run: Callable[[npt.NDArray[Any]], Outputs]
    keep: list[Any] = field(default_factory=list)
    """Objects the run function needs alive (a loaded SavedModel owns its variables)."""
    signature: str = export.SIGNATURE
    """SavedModel sources: the signature served."""


def detect_format(path: Path) -> str:
    """keras (.keras/.h5), savedmodel (a folder with saved_model.pb), tflite or onnx; ModelImportError otherwise."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelImportError(f"{path} is a folder without saved_model.pb: not a SavedModel")
    if not path.is_file():
        raise ModelImportError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    raise ModelImportError(
        f"{path.name}: unknown model format; import a Keras .keras/.h5 file, a SavedModel folder, a .tflite or an .onnx"
    )


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def _load_keras(path: Path) -> _Source:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(str(path), compile=False)
    if len(model.inputs) != 1:
        raise ModelImportError(f"{path.name} takes {len(model.inputs)} inputs; a served image model takes one")
    names = list(model.output_names)

    def run(x: npt.NDArray[Any]) -> Outputs:
        result = model.predict_on_batch(x)
        values = result if isinstance(result, list | tuple) else [result]
        if isinstance(result, dict):
            values = [result[n] for n in names]
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}

    inp = model.inputs[0]
    return _Source("keras", str(inp.name), _dims(inp.shape), str(inp.dtype), names, run, [model])


def _load_savedmodel(path: Path, signature: str) -> _Source:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    if signature not in loaded.signatures:
        raise ModelImportError(
            f"{path.name} has no signature {signature!r} (it has {sorted(loaded.signatures)}); pass --signature"
        )
    fn = loaded.signatures[signature]
    inputs = fn.structured_input_signature[1]
    if len(inputs) != 1:
        raise ModelImportError(f"signature {signature!r} takes {len(inputs)} inputs; a served image model takes one")
    ((key, spec),) = inputs.items()
    names = sorted(fn.structured_outputs)

    def run(x: npt.NDArray[Any]) -> Outputs:
        result = fn(**{key: tf.constant(x, dtype=spec.dtype)})
        return {n: result[n].numpy() for n in names}

    return _Source("savedmodel", key, _dims(spec.shape.as_list()), spec.dtype.name, names, run, [loaded], signature)


def _load_tflite(path: Path) -> _Source:
    from modelbuild.runners import TFLiteRunner

    runner = TFLiteRunner(path)
    interpreter = runner.interpreter
    signatures = interpreter.get_signature_list()
    if signatures:
        sig = interpreter.get_signature_runner(next(iter(signatures)))
        inputs = sig.get_input_details()
        names = list(sig.get_output_details())
        if len(inputs) != 1:
            raise ModelImportError(f"{path.name} takes {len(inputs)} inputs; a served image model takes one")
        ((name, detail),) = inputs.items()
    else:
        details = interpreter.get_input_details()
        if len(details) != 1:
            raise ModelImportError(f"{path.name} takes {len(details)} inputs; a served image model takes one")
        detail, name = details[0], details[0]["name"]
        names = [d["name"] for d in interpreter.get_output_details()]
    shape = detail.get("shape_signature", detail["shape"])
    return _Source("tflite", name, _dims([int(d) for d in shape]), np.dtype(detail["dtype"]).name, names, runner)


def _load_onnx(path: Path) -> _Source:
    from modelbuild.runners import OnnxRunner

    runner = OnnxRunner(path)
    session = runner.session
    (inp,) = session.get_inputs()
    dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}.get(inp.type)
    if dtype is None:
        raise ModelImportError(f"{path.name} takes {inp.type}; a served image model takes float or uint8 pixels")
    names = [o.name for o in session.get_outputs()]
    return _Source("onnx", inp.name, _dims(inp.shape), dtype, names, runner)


def _load(path: Path, fmt: str, signature: str) -> _Source:
    try:
        if fmt == "keras":
            return _load_keras(path)
        if fmt == "savedmodel":
            return _load_savedmodel(path, signature)
        if fmt == "tflite":
            return _load_tflite(path)
        return _load_onnx(path)
    except (ModelImportError, ArtifactLoadError):
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactLoadError(
            f"{path.name} does not load as a {fmt} model: {first[:300]}; check the file (re-export it)"
        ) from exc


def _layout_and_size(source: _Source, opts: ImportOptions) -> tuple[bool, int, int]:
    """(NCHW?, height, width) of the served input, from the model's shape and the options."""
    shape = source.input_shape
    if len(shape) != 4:
        raise ModelImportError(f"input {source.input_name!r} has shape {list(shape)}; an image model takes 4 dims")
    layout = opts.layout or ("NCHW" if shape[1] == 3 and shape[3] != 3 else "NHWC")
    if layout not in ("NHWC", "NCHW"):
        raise ModelImportError(f"--layout {layout!r}: use NHWC or NCHW")
    nchw = layout == "NCHW"
    channels, h, w = (shape[1], shape[2], shape[3]) if nchw else (shape[3], shape[1], shape[2])
    if channels != 3:
        raise ModelImportError(
            f"input {source.input_name!r} {list(shape)} ({layout}) is not RGB: it must have 3 channels"
        )
    if opts.input_size:
        if (h is not None and h != opts.input_size[0]) or (w is not None and w != opts.input_size[1]):
            raise ModelImportError(
                f"--input-size {opts.input_size[0]}x{opts.input_size[1]} but the model takes {h}x{w}"
            )
        h, w = opts.input_size
    if h is None or w is None:
        raise ModelImportError(f"input {source.input_name!r} {list(shape)} has no fixed size: pass --input-size")
    return nchw, h, w


def _preprocessing(opts: ImportOptions, h: int, w: int, norm: Normalisation) -> Preprocessing:
    if opts.resize not in RESIZE_POLICIES:
        raise ModelImportError(f"--resize {opts.resize!r}: use one of {', '.join(RESIZE_POLICIES)}")
    if opts.resample not in RESAMPLE:
        raise ModelImportError(f"--resample {opts.resample!r}: use one of {', '.join(RESAMPLE)}")
    if opts.resize == "stretch":
        return Preprocessing("stretch", None, None, opts.resample, norm)
    if h != w:
        raise ModelImportError(f"the input is {h}x{w}: --resize shorter crops a square; use --resize stretch")
    shorter = opts.resize_shorter_to or default_resize_shorter(h)
    if shorter < h:
        raise ModelImportError(f"--resize-shorter-to {shorter} is smaller than the input size {h}")
    return Preprocessing("shorter", shorter, h, opts.resample, norm)


def _read_labels(path: Path) -> list[str]:
    """A JSON list of strings, or a text file with one label per line."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ModelImportError(f"--labels {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError:
        doc = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(doc, list) or not doc or not all(isinstance(x, str) and x for x in doc):
        raise ModelImportError(f"--labels {path}: expected a JSON list of names or one name per line")
    return doc


def _tf_name(name: str) -> str:
    """The served input name: the model's own when TensorFlow accepts it, else ``images``."""
    return name if _TF_NAME.fullmatch(name) else "images"


def _export(
    source: _Source, path: Path, stage: Path, stem: str, input_name: str, size: tuple[int, int], wrap: export.Wrap
) -> dict[str, Artifact]:
    """Write the artifacts the source's format allows and describe them."""
    names = source.output_names
    written: dict[str, Artifact] = {}
    if source.fmt in ("keras", "savedmodel"):
        sm = f"{stem}_savedmodel"
        if source.fmt == "keras":
            export.savedmodel_from_keras(source.keep[0], stage / sm, input_name, size, names, wrap)
        else:
            export.savedmodel_from_savedmodel(path, source.signature, stage / sm, input_name, size, names, wrap)
        export.tflite_from_savedmodel(stage / sm, stage / f"{stem}.tflite")
        export.onnx_from_savedmodel(stage / sm, stage / f"{stem}.onnx", input_name, size)
        written["savedmodel"] = describe(stage, sm, signature=export.SIGNATURE)
    elif source.fmt == "tflite":
        shutil.copyfile(path, stage / f"{stem}.tflite")
        export.onnx_from_tflite(stage / f"{stem}.tflite", stage / f"{stem}.onnx", input_name, names)
    else:
        export.onnx_from_onnx(path, stage / f"{stem}.onnx", input_name, names, wrap)
    if (stage / f"{stem}.tflite").exists():
        written["tflite"] = describe(stage, f"{stem}.tflite")
    written["onnx"] = describe(stage, f"{stem}.onnx", opset=export.ONNX_OPSET if source.fmt != "onnx" else None)
    return {k: written[k] for k in ("tflite", "onnx", "savedmodel") if k in written}


def _is_probabilities(values: npt.NDArray[Any]) -> bool:
    rows = np.asarray(values, np.float64)
    return bool(rows.ndim == 2 and (rows >= 0).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def import_model(source_path: Path, opts: ImportOptions, repo: LocalRepository, log: Log = print) -> Path:
    """Import a model as a new version of ``opts.name`` in the repository; return the version folder.

    Raises (all FnVisionError): UnknownTaskError, ModelImportError (format, inputs, options, engines
    that disagree), ArtifactLoadError (the model does not load or run), ModelVersionExistsError.
    """
    if opts.task not in TASKS:
        raise UnknownTaskError(f"task {opts.task!r} is not one of {', '.join(TASKS)}: pass --task with one of them")
    check_name(opts.name)
    if opts.version:
        check_version(opts.version)
    if opts.labels and opts.task != "classification":
        raise ModelImportError(f"--labels is for --task classification, not {opts.task}")
    if opts.task == "classification" and not opts.labels:
        raise ModelImportError("a classification model needs its class names: pass --labels FILE")
    fmt = detect_format(source_path)
    norm = opts.normalisation()
    source = _load(source_path, fmt, opts.signature)
    nchw, h, w = _layout_and_size(source, opts)
    wrap = export.Wrap(norm, nchw, opts.softmax)
    if fmt == "tflite" and not wrap.is_identity:
        raise ModelImportError(
            "a .tflite cannot be rewritten to take NHWC 0..255 pixels (--mean/--std, NCHW, --softmax): "
            "import the Keras, SavedModel or ONNX model instead, or bake them in before converting"
        )
    if source.input_dtype not in ("float32", "uint8"):
        raise ModelImportError(
            f"input {source.input_name!r} is {source.input_dtype}; served images are float32 or uint8"
        )
    if source.input_dtype == "uint8" and not wrap.is_identity:
        raise ModelImportError("a uint8-input model takes raw pixels: --mean/--std, NCHW and --softmax do not apply")
    prep = _preprocessing(opts, h, w, norm)
    input_name = _tf_name(source.input_name) if fmt in ("keras", "savedmodel") else source.input_name
    labels = _read_labels(opts.labels) if opts.labels else None

    with repo.lock(opts.name):
        version = opts.version or next_version(repo.versions(opts.name))
        stage = repo.stage(opts.name)
        try:
            log(f"[import] {source_path.name} ({fmt}) -> {opts.name}/{version}")
            manifest = _assemble(source, source_path, stage, opts, version, prep, wrap, input_name, (h, w), labels, log)
            (stage / MANIFEST_NAME).write_text(manifest.to_json(), "utf-8")
            problems = check_folder(stage, manifest)
            if problems:
                raise ModelImportError("the manifest does not match the files written: " + "; ".join(problems))
            folder = repo.publish(stage, opts.name, version)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    log(f"[import] published {opts.name}/{version} in {repo.uri}")
    return folder


def _assemble(
    source: _Source,
    source_path: Path,
    stage: Path,
    opts: ImportOptions,
    version: str,
    prep: Preprocessing,
    wrap: export.Wrap,
    input_name: str,
    size: tuple[int, int],
    labels: list[str] | None,
    log: Log,
) -> Manifest:
    """Export the artifacts into stage, check them against the source model, write the labels; the manifest."""
    h, w = size
    stem = re.sub(r"[^A-Za-z0-9_]", "_", opts.name)
    artifacts = _export(source, source_path, stage, stem, input_name, (h, w), wrap)
    log(f"[import] wrote {', '.join(f'{k} ({a.path})' for k, a in artifacts.items())}")
    batch = check_batch(prep, h, w, source.input_dtype)
    run = export.run_with_wrap(source.run, wrap) if source.input_dtype == "float32" else source.run
    reference = run(batch)
    outputs = _outputs(reference, source.output_names, opts, labels)
    agreed = agreement.compare(
        reference,
        agreement.run_artifacts(stage, artifacts, batch),
        reference_name=f"the source {source.fmt} model",
        inputs=f"{len(batch)} images (modelbuild.photos.check_batch)",
        classification=opts.task == "classification",
    )
    if agreed.problems:
        problems = "; ".join(agreed.problems)
        raise ModelImportError(f"the exported artifacts do not compute what the model does: {problems}")
    log(f"[import] engines agree: {agreed.record['max_abs_diff']}")
    label_entry = None
    if labels is not None:
        (stage / LABELS_NAME).write_bytes(labels_from(labels))
        source_name = opts.labels.name if opts.labels else None
        label_entry = Labels(LABELS_NAME, file_sha256(stage / LABELS_NAME), len(labels), source_name)
    return Manifest(
        name=opts.name,
        version=version,
        digest=f"sha256:{artifacts[primary_artifact(artifacts)].sha256}",
        task=opts.task,
        inputs=(TensorSpec(input_name, (None, h, w, 3), source.input_dtype, "NHWC"),),
        outputs=outputs,
        preprocessing=prep,
        labels=label_entry,
        artifacts=artifacts,
        engines=_engines(artifacts),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        provenance={
            "imported_by": "vision-model import",
            "source": {"file": source_path.name, "format": source.fmt, "sha256": path_sha256(source_path)},
            "baked_in": {"normalisation": not wrap.normalisation.is_identity, "nchw_transpose": wrap.nchw,
                         "softmax": wrap.softmax},
            "tools": _tools(),
        },
        agreement=agreed.record,
    )  # fmt: skip


def _outputs(
    reference: Outputs, names: Sequence[str], opts: ImportOptions, labels: list[str] | None
) -> tuple[TensorSpec, ...]:
    """The manifest's outputs, from what the model answered on the check batch."""
    specs = []
    for name in names:
        values = reference[name]
        activation = (
            "softmax" if opts.task == "classification" and (opts.softmax or _is_probabilities(values)) else None
        )
        specs.append(TensorSpec(name, (None, *values.shape[1:]), np.asarray(values).dtype.name, activation=activation))
    if opts.task == "classification":
        if len(specs) != 1 or len(specs[0].shape) != 2:
            raise ModelImportError(
                f"a classifier answers one [N, classes] output, this model answers {[list(s.shape) for s in specs]}: "
                "import it with --task raw"
            )
        classes = specs[0].shape[1]
        if labels is not None and len(labels) != classes:
            raise ModelImportError(f"--labels has {len(labels)} names but the model has {classes} classes")
        if specs[0].activation is None:
            raise ModelImportError(
                "the classifier's outputs are not probabilities (rows do not sum to 1): pass --softmax to bake one in"
            )
    return tuple(specs)


def _engines(artifacts: dict[str, Artifact]) -> dict[str, dict[str, Any]]:
    engine_of = {"tflite": "litert", "onnx": "onnxruntime", "savedmodel": "tensorflow"}
    return {engine_of[k]: ({"artifact": k, "num_threads": 2} if k == "tflite" else {"artifact": k}) for k in artifacts}


def _tools() -> dict[str, str]:
    try:
        return tool_versions()
    except Exception:  # a tool that is not installed is simply not recorded
        return {}
