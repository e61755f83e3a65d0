"""The model, loaded once per hot container: engines (LiteRT, TensorFlow) and the load-once cache.

TensorFlow is imported only inside ``TensorFlowEngine``: a LiteRT container never loads it
(1.3 GB on disk, seconds of import, hundreds of MB of RSS).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fnvision_common.threadpools import pids_limit, thread_count, thread_ids

from .errors import ConfigError, ModelCorruptError, ModelError, PredictError
from .manifest import MANIFEST_NAME, Manifest, check_files
from .manifest import parse as parse_manifest
from .nativelog import native_stderr_as_logs
from .settings import MAX_THREADS, Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Runs the network: uint8 or float32 [N,H,W,C] in 0..255 -> float32 [N,classes] probabilities."""

    name: str

    def predict(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Return the class probabilities of a batch."""
        ...


PIDS_SPARE = 8
"""Pids left free for everything else (the fdk, boto3, a TensorFlow import) when LiteRT sizes its pool."""
_UNRELEASABLE: list[Any] = []


class ThreadStartError(ConfigError):
    """The engine could not start the threads it was configured for (the container's pid limit)."""


def _check_pids_headroom(num_threads: int, workers: int) -> None:
    """Refuse, before building anything, a pool that the container's pids limit cannot hold."""
    limit = pids_limit()
    if limit is None or workers <= 0:
        return
    most, in_use = limit
    if in_use + workers + PIDS_SPARE > most:
        raise ThreadStartError(
            f"MODEL_NUM_THREADS={num_threads} needs {workers} more threads, but the container runs "
            f"{in_use} of its {most} pids (keeping {PIDS_SPARE} spare); lower MODEL_NUM_THREADS"
        )


class LiteRTEngine:
    """A LiteRT interpreter, serialised by a lock; big batches run in slices of at most ``invoke_batch``.

    The interpreter's arena grows with the batch it is resized to (batch 32 in one invoke: ~320 MB
    peak RSS, slices of 8: ~155 MB); slices of 4 keep it under 128 MB at about the same throughput.
    """

    name = "litert"

    def __init__(self, path: Path, num_threads: int, invoke_batch: int = 4) -> None:
        from ai_edge_litert.interpreter import Interpreter

        workers = num_threads - 1  # XNNPACK's pool: the calling thread plus num_threads - 1 workers
        _check_pids_headroom(num_threads, workers)
        before = thread_ids()
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()  # applies the XNNPACK delegate, which starts its workers
        started = len(thread_ids() - before)  # (with loads running in parallel, theirs count too)
        if started < workers:
            # A pool that lost threads must never be freed: its destructor joins threads that do not
            # exist and the process dies (SIGSEGV, measured). Keep it, and fail every call loudly.
            _UNRELEASABLE.append(interpreter)
            raise ThreadStartError(
                f"MODEL_NUM_THREADS={num_threads}: LiteRT started {started} of its {workers} worker "
                "threads (the container's pid limit, Fn: 50, is probably reached); lower MODEL_NUM_THREADS"
            )
        self._interpreter = interpreter
        self.threads = num_threads
        inp = self._interpreter.get_input_details()[0]
        self._input = int(inp["index"])
        self._input_shape = [int(d) for d in inp["shape"]]
        self._input_dtype = np.dtype(inp["dtype"])
        self._output = int(self._interpreter.get_output_details()[0]["index"])
        self._invoke_batch = invoke_batch
        self._lock = threading.Lock()  # an Interpreter is not thread-safe

    @property
    def interpreter(self) -> Any:
        """The underlying interpreter (for benchmarks)."""
        return self._interpreter

    def predict(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Run a batch (uint8 or float32), slice by slice; the interpreter is resized when the size changes."""
        step = self._invoke_batch
        with self._lock:
            parts = [self._invoke(batch[i : i + step]) for i in range(0, int(batch.shape[0]), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _invoke(self, part: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        n = int(part.shape[0])
        if n != self._input_shape[0]:
            with native_stderr_as_logs():  # a re-planned graph may log from C++
                self._interpreter.resize_tensor_input(self._input, [n, *self._input_shape[1:]])
                self._interpreter.allocate_tensors()
            self._input_shape[0] = n
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(part, dtype=self._input_dtype))
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32)


class TensorFlowEngine:
    """A SavedModel signature called with TensorFlow (imported here, never at module level)."""

    name = "tensorflow"

    def __init__(self, path: Path, signature: str, num_threads: int = 2) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise ModelError(
                "MODEL_ENGINE=tensorflow needs tensorflow-cpu in requirements.txt (not in the default image)"
            ) from exc
        # TensorFlow sizes both of its pools by the host's cores (2 x 64 threads on a 64-core host):
        # bounded before its runtime starts, as MODEL_NUM_THREADS does for LiteRT.
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self._tf = tf
        self.threads = num_threads
        loaded = tf.saved_model.load(str(path))
        self._loaded = loaded  # keep the trackable object alive: the signature refers to it
        self._fn = loaded.signatures[signature]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"signature {signature} must have one input and one output")
        self._input_name = next(iter(inputs))
        self._output_name = next(iter(outputs))

    def predict(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Run one batch through the signature."""
        result = self._fn(**{self._input_name: self._tf.constant(batch, dtype=self._tf.float32)})
        return np.asarray(result[self._output_name].numpy(), dtype=np.float32)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, with its provenance."""

    manifest: Manifest
    labels: tuple[str, ...]
    engine: Engine
    uri: str
    load_ms: float

    def info(self) -> dict[str, str]:
        """Return name, version, digest and engine (the `model` object of answers and documents)."""
        m = self.manifest
        return {"name": m.name, "version": m.version, "digest": m.digest, "engine": self.engine.name}


def _labels(path: Path) -> tuple[str, ...]:
    try:
        labels = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelCorruptError(f"labels file {path.name} is unreadable: {exc}") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelCorruptError(f"labels file {path.name} must be a JSON list of strings")
    return tuple(labels)


def load_model(settings: Settings, s3_client: Callable[[], Any]) -> LoadedModel:
    """Load (download if s3://) and verify the model named by the settings; no caching here."""
    start = time.perf_counter()
    uri = settings.model_uri
    remote = uri.startswith("s3://")
    if remote:
        from .model_download import download_model

        directory = download_model(uri, settings.engine, settings.cache_dir, s3_client())
    elif "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"MODEL_URI={uri!r}: use a directory path or s3://bucket/prefix/")
    else:
        directory = Path(uri.removeprefix("file://"))
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(f"no {MANIFEST_NAME} in model directory {directory} (MODEL_URI={uri})")
    manifest = parse_manifest(manifest_path.read_bytes())
    # a downloaded model was verified before it was published in the cache (model_download.py)
    artifact = check_files(directory, manifest, settings.engine, hashes=settings.verify and not remote)
    labels = _labels(directory / manifest.labels_path)
    # LiteRT (and TensorFlow) log from C++ straight to fd 2: turned into JSON records (nativelog)
    with native_stderr_as_logs(settings.engine):
        try:
            engine: Engine
            hint = manifest.engines.get("litert", {}).get("num_threads", 2)
            threads = min(settings.num_threads or int(hint), MAX_THREADS)
            if settings.engine == "tensorflow":
                signature = str(manifest.engines.get("tensorflow", {}).get("signature", "serving_default"))
                engine = TensorFlowEngine(directory / artifact.path, signature, threads)
            else:
                engine = LiteRTEngine(directory / artifact.path, threads, settings.invoke_batch)
        except PredictError:
            raise
        except Exception as exc:  # a file that passed its checksum but does not load
            raise ModelCorruptError(f"cannot load {artifact.path} with {settings.engine}: {exc}") from exc
        probe = engine.predict(np.zeros((1, manifest.height, manifest.width, manifest.channels), np.float32))
    if probe.shape != (1, len(labels)):
        raise ModelCorruptError(f"the model outputs {list(probe.shape)} but there are {len(labels)} labels")
    load_ms = (time.perf_counter() - start) * 1000
    log.info(
        "model loaded",
        extra={
            "model": manifest.name,
            "model_version": manifest.version,
            "engine": engine.name,
            "model_uri": uri,
            "load_ms": round(load_ms, 1),
            "tensorflow_imported": "tensorflow" in sys.modules,
            "num_threads": threads,
            "process_threads": thread_count(),
            "pids": _pids_field(),
        },
    )
    return LoadedModel(manifest, labels, engine, uri, load_ms)


def _pids_field() -> dict[str, int] | None:
    limit = pids_limit()
    return None if limit is None else {"limit": limit[0], "in_use": limit[1]}


_Key = tuple[str, str, int | None]
"""What a loaded model depends on: MODEL_URI, the engine, MODEL_NUM_THREADS."""


class ModelCache:
    """Loads a model on first use and hands the same one to every later call.

    The first caller loads under the lock; concurrent callers wait and reuse it. A failed load is
    not kept, so the next call tries again; except when the engine could not start its threads:
    that answer stays (another try would only start a second pool under the same pid limit).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: tuple[_Key, LoadedModel] | None = None
        self._failed: tuple[_Key, ThreadStartError] | None = None

    def get(self, settings: Settings, s3_client: Callable[[], Any]) -> tuple[LoadedModel, bool]:
        """Return the model and whether this call loaded it (a cold start)."""
        key = (settings.model_uri, settings.engine, settings.num_threads)
        current = self._loaded
        if current is not None and current[0] == key:
            return current[1], False
        with self._lock:
            if self._loaded is not None and self._loaded[0] == key:
                return self._loaded[1], False
            if self._failed is not None and self._failed[0] == key:
                raise self._failed[1]
            try:
                model = load_model(settings, s3_client)
            except ThreadStartError as exc:
                self._failed = (key, exc)
                raise
            self._loaded = (key, model)
            return model, True


_CONTAINER = ModelCache()


def get_model(settings: Settings, s3_client: Callable[[], Any]) -> tuple[LoadedModel, bool]:
    """Return the container's model (one per process, see ``ModelCache``) and whether this call loaded it."""
    return _CONTAINER.get(settings, s3_client)
