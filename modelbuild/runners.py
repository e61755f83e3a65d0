"""Run one artifact of a version on a batch with its own engine: LiteRT, TensorFlow or ONNX Runtime.

Build, import and verify run every artifact this way to check that it loads, runs and agrees with
the others. (predict has its own engines, which serve; these only check.) Each runner returns the
outputs by the names the artifact gives them, which are the manifest's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fnvision_common.errors import ArtifactLoadError

__all__ = ["ENGINE_OF", "Runner", "open_runner"]

ENGINE_OF = {"tflite": "litert", "savedmodel": "tensorflow", "onnx": "onnxruntime"}
Outputs = dict[str, npt.NDArray[Any]]


class Runner(Protocol):
    """An artifact loaded in its engine."""

    kind: str

    def __call__(self, batch: npt.NDArray[Any]) -> Outputs:
        """Run a batch [N,H,W,3] (0..255); return every output by name."""
        ...


class TFLiteRunner:
    """A .tflite in ai_edge_litert's interpreter, called through its signature when it has one."""

    kind = "tflite"

    def __init__(self, path: Path, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        signatures = self._interpreter.get_signature_list()
        self._runner = self._interpreter.get_signature_runner(next(iter(signatures))) if signatures else None
        if self._runner is None:
            self._interpreter.allocate_tensors()

    @property
    def interpreter(self) -> Any:
        """The LiteRT interpreter (its signatures and tensor details)."""
        return self._interpreter

    def __call__(self, batch: npt.NDArray[Any]) -> Outputs:
        if self._runner is not None:
            (name, detail), *rest = self._runner.get_input_details().items()
            if rest:
                raise ArtifactLoadError("the .tflite signature takes more than one input")
            result = self._runner(**{name: np.ascontiguousarray(batch, dtype=detail["dtype"])})
            return {k: np.asarray(v) for k, v in result.items()}
        (inp,) = self._interpreter.get_input_details()
        self._interpreter.resize_tensor_input(inp["index"], list(batch.shape))
        self._interpreter.allocate_tensors()
        self._interpreter.set_tensor(inp["index"], np.ascontiguousarray(batch, dtype=inp["dtype"]))
        self._interpreter.invoke()
        return {d["name"]: self._interpreter.get_tensor(d["index"]) for d in self._interpreter.get_output_details()}


class SavedModelRunner:
    """A SavedModel signature called with TensorFlow."""

    kind = "savedmodel"

    def __init__(self, path: Path, signature: str) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))  # keeps the variables alive
        self._fn = self._loaded.signatures[signature]
        (self._input,) = self._fn.structured_input_signature[1]

    def __call__(self, batch: npt.NDArray[Any]) -> Outputs:
        result = self._fn(**{self._input: self._tf.constant(batch, dtype=self._tf.float32)})
        return {k: v.numpy() for k, v in result.items()}


class OnnxRunner:
    """An .onnx file in an ONNX Runtime CPU session (rows one by one when its batch size is fixed)."""

    kind = "onnx"

    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (inp,) = self._session.get_inputs()
        self._input = inp.name
        self._fixed_batch = isinstance(inp.shape[0], int) and inp.shape[0] > 0
        self._dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
        self._names = [o.name for o in self._session.get_outputs()]

    @property
    def session(self) -> Any:
        """The ONNX Runtime session (its inputs and outputs)."""
        return self._session

    def __call__(self, batch: npt.NDArray[Any]) -> Outputs:
        x = np.ascontiguousarray(batch, dtype=self._dtype)
        if not self._fixed_batch:
            return dict(zip(self._names, self._session.run(None, {self._input: x}), strict=True))
        rows = [self._session.run(None, {self._input: x[i : i + 1]}) for i in range(len(x))]
        return {n: np.concatenate([r[j] for r in rows]) for j, n in enumerate(self._names)}


def open_runner(kind: str, path: Path, *, signature: str = "serving_default", threads: int = 2) -> Runner:
    """Load an artifact in its engine; ArtifactLoadError (naming the file and the engine) when it fails."""
    try:
        if kind == "tflite":
            return TFLiteRunner(path, threads)
        if kind == "savedmodel":
            return SavedModelRunner(path, signature)
        if kind == "onnx":
            return OnnxRunner(path, threads)
    except ImportError as exc:
        raise ArtifactLoadError(f"{kind} needs {exc.name} installed to load {path.name} (pip install it)") from exc
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactLoadError(
            f"{path.name} does not load in {ENGINE_OF[kind]}: {first[:300]}; rebuild or re-import the version"
        ) from exc
    raise ArtifactLoadError(f"no engine runs {kind!r} artifacts (kinds: {', '.join(ENGINE_OF)})")
