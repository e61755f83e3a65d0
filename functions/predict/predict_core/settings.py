"""Configuration of the predict function, read once from the environment (Fn config = env vars).

Every key is listed in ``functions/predict/README.md``; S3_* keys are parsed by ``s3client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fnvision_common.env import SettingError, env_bool, env_int, log_level, results_index, results_location
from fnvision_common.s3client import S3Settings

from .errors import ConfigError

MODEL_URI = "MODEL_URI"
MODEL_ENGINE = "MODEL_ENGINE"
MODEL_NUM_THREADS = "MODEL_NUM_THREADS"
MODEL_CACHE_DIR = "MODEL_CACHE_DIR"
MODEL_INVOKE_BATCH = "MODEL_INVOKE_BATCH"
MODEL_VERIFY = "MODEL_VERIFY"
TOP_K = "TOP_K"
MAX_BATCH = "MAX_BATCH"
MAX_JSON_BYTES = "MAX_JSON_BYTES"
RESULTS_BUCKET = "RESULTS_BUCKET"
RESULTS_PREFIX = "RESULTS_PREFIX"
LOG_LEVEL = "LOG_LEVEL"

ENGINES = ("litert", "tensorflow")
MAX_TOP_K = 1000
"""Most TOP_K, in both functions (a model may have fewer labels: predict checks that per call)."""
MAX_THREADS = 16
"""Most MODEL_NUM_THREADS: Fn runs a container with 50 pids; 16 threads leave room for the rest."""


@dataclass(frozen=True)
class Settings:
    """What predict serves and where it records results."""

    model_uri: str
    """Model directory path, or ``s3://bucket/prefix/`` holding the same files."""
    engine: str = "litert"
    """``litert`` (the .tflite, default) or ``tensorflow`` (the SavedModel; needs tensorflow installed)."""
    num_threads: int | None = None
    """Inference threads (LiteRT's pool; TensorFlow's intra-op pool), 1..MAX_THREADS; None: the
    manifest's hint (engines.litert.num_threads), else 2."""
    invoke_batch: int = 4
    """LiteRT runs bigger batches in slices of this many images (bounds the interpreter's memory)."""
    cache_dir: str = "/tmp/predict-model"
    """Where an ``s3://`` model is downloaded to (Fn functions may only write under /tmp)."""
    verify: bool = True
    """Check each artifact's sha256 against the manifest, also for a local directory."""
    top_k: int = 5
    """Labels per image when the request does not say."""
    max_batch: int = 64
    """Largest batch accepted in one call (memory guard: 64 float32 images are 38 MB)."""
    max_json_bytes: int = 16 << 20
    """Largest JSON body parsed (with MAX_BATCH, what bounds a call's memory; .npy/OIP binary are exempt)."""
    results_bucket: str = "results"
    """Bucket of the result documents."""
    results_prefix: str = ""
    """Key prefix of the result documents."""
    results_index: bool = True
    """Write the result index (fnvision_common.result_index) with each document: what the results
    function lists. Off saves its requests (docs/contracts.md §5) where nothing reads it."""
    log_level: str = "INFO"
    """Level of our loggers (noisy libraries stay at WARNING)."""
    s3: S3Settings = field(default_factory=S3Settings)
    """Object storage (S3_* keys, docs/contracts.md §7)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_model_dir: str | Path) -> Settings:
        """Parse the settings; raise ConfigError naming the key on any bad value."""
        engine = env.get(MODEL_ENGINE, "litert").strip().lower() or "litert"
        if engine not in ENGINES:
            raise ConfigError(f"{MODEL_ENGINE}={engine!r}: use one of {', '.join(ENGINES)}")
        try:
            results_bucket, results_prefix = results_location(env)
            return cls(
                model_uri=env.get(MODEL_URI, "").strip() or str(default_model_dir),
                engine=engine,
                num_threads=env_int(env, MODEL_NUM_THREADS, 0, 1, MAX_THREADS) or None,
                invoke_batch=env_int(env, MODEL_INVOKE_BATCH, 4, 1, 1024),
                cache_dir=env.get(MODEL_CACHE_DIR, "").strip() or "/tmp/predict-model",
                verify=env_bool(env, MODEL_VERIFY, True),
                top_k=env_int(env, TOP_K, 5, 1, MAX_TOP_K),
                max_batch=env_int(env, MAX_BATCH, 64, 1, 1024),
                max_json_bytes=env_int(env, MAX_JSON_BYTES, 16 << 20, 1024, 1 << 30),
                results_bucket=results_bucket,
                results_prefix=results_prefix,
                results_index=results_index(env),
                log_level=log_level(env),
                s3=S3Settings.from_env(env),
            )
        except SettingError as exc:
            raise ConfigError(str(exc)) from exc
