"""Configuration of the preprocess function, read once from the environment (Fn config = env vars).

Every key is listed in ``functions/preprocess/README.md``. Bad values raise ``ConfigError`` naming
the key. The model input size is never hard-wired: it comes from predict's model manifest
(``model_manifest.json`` next to ``func.py``, copied there by ``make model``; ``MODEL_MANIFEST``
points elsewhere), and ``MODEL_INPUT_SIZE`` overrides both. Without any of them the function
refuses to start its first call with a ``config_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fnvision_common.access import AUTH_TOKEN
from fnvision_common.env import (
    SettingError,
    env_bool,
    env_float,
    env_int,
    log_level,
    results_index,
    results_location,
)
from fnvision_common.manifest import Manifest, ManifestError
from fnvision_common.s3client import S3Settings

from .errors import ConfigError

MANIFEST_FILE = "model_manifest.json"
"""Name of the copy of predict's manifest.json in the function folder (``make model`` writes it)."""
MAX_TOP_K = 1000
"""Most TOP_K (the same bound as predict's)."""
RESIZE_RATIO = 256 / 224
"""ImageNet convention: resize the shorter side to size*256/224, then centre-crop to size."""


def _hosts(raw: str) -> frozenset[str]:
    return frozenset(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())


@dataclass(frozen=True)
class ModelInput:
    """What the model wants: tensor name, square side and the resize before the centre crop."""

    name: str
    size: int
    resize_shorter: int

    @classmethod
    def from_size(cls, size: int, name: str = "images") -> ModelInput:
        """Derive the resize step from the crop size (size*256/224)."""
        return cls(name=name, size=size, resize_shorter=round(size * RESIZE_RATIO))

    @classmethod
    def from_manifest(cls, path: Path) -> ModelInput:
        """Read input name, size and preprocessing from a model manifest (docs/contracts.md §2)."""
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            raise ConfigError(f"MODEL_MANIFEST={str(path)!r} is not a readable model manifest: {exc}") from exc
        size = manifest.center_crop or manifest.height
        base = cls.from_size(size, manifest.input_name)
        return cls(name=manifest.input_name, size=size, resize_shorter=manifest.resize_shorter or base.resize_shorter)


@dataclass(frozen=True)
class Settings:
    """All settings of the preprocess function."""

    model: ModelInput
    """Model input: model_manifest.json next to func.py, or MODEL_MANIFEST; MODEL_INPUT_SIZE /
    MODEL_INPUT_NAME override what the manifest says (and are required without a manifest)."""
    max_pixels: int = 40_000_000
    """MAX_PIXELS: images whose header announces more pixels are refused before decoding (413)."""
    max_decoded_bytes: int = 100_000_000
    """MAX_DECODED_BYTES: images (after JPEG draft scaling) that would take more memory decoded are
    refused (413 image_too_large); sized for the 256 MB function (README: memory)."""
    max_image_bytes: int = 20 * 1024 * 1024
    """MAX_IMAGE_BYTES: byte cap for one object, URL body or upload (413)."""
    max_images: int = 32
    """MAX_IMAGES: most images in one call (records, uploads)."""
    predict_url: str = ""
    """PREDICT_URL: where predict listens (Fn invoke URL or HTTP trigger URL)."""
    predict_timeout: float = 60.0
    """PREDICT_TIMEOUT: seconds for one predict call (connect + answer)."""
    predict_attempts: int = 4
    """PREDICT_ATTEMPTS: tries on connection errors / 502 / 503 / 504 before predict_unavailable."""
    predict_backoff: float = 0.25
    """PREDICT_BACKOFF: first retry delay in seconds, doubled each time."""
    predict_max_request_bytes: int = 5_000_000
    """PREDICT_MAX_REQUEST_BYTES: split batches above this (OCI caps invoke bodies at 6 MB)."""
    top_k: int = 5
    """TOP_K: classes per image asked from predict."""
    url_allow_hosts: frozenset[str] = frozenset()
    """URL_ALLOW_HOSTS: comma-separated host names / IPs trusted even if they resolve to private addresses."""
    url_connect_timeout: float = 3.0
    """URL_CONNECT_TIMEOUT: seconds to connect to an image URL."""
    url_read_timeout: float = 10.0
    """URL_READ_TIMEOUT: seconds without data while reading an image URL."""
    url_total_timeout: float = 30.0
    """URL_TOTAL_TIMEOUT: seconds for a whole URL download, redirects included."""
    url_max_redirects: int = 3
    """URL_MAX_REDIRECTS: redirects followed (each one re-checked)."""
    store_gps: bool = False
    """STORE_GPS: keep EXIF GPS latitude/longitude in the metadata (off by default: privacy)."""
    auth_token: str = ""
    """AUTH_TOKEN: when set, HTTP-trigger calls need `Authorization: Bearer <token>`."""
    input_bucket: str = ""
    """INPUT_BUCKET: bucket used for `{"key": ...}` requests without a bucket."""
    results_bucket: str = "results"
    """RESULTS_BUCKET: results and failure records; objects here are never processed."""
    results_prefix: str = ""
    results_index: bool = True
    """RESULTS_INDEX: failure records get their result-index entries (fnvision_common.result_index)."""
    """RESULTS_PREFIX: key prefix of results and failure records."""
    done_check_seconds: float = 10.0
    """DONE_CHECK_SECONDS: event objects whose result (for the model predict last answered with, within
    this many seconds) or failure record exists are answered with one LIST, not processed again;
    0 turns the check off (preprocess_core/done.py)."""
    log_level: str = "INFO"
    """LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    s3: S3Settings = field(default_factory=S3Settings)
    """S3_* keys, see docs/contracts.md §7."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_manifest: Path | None = None) -> Settings:
        """Read every key from ``env`` (pass ``os.environ`` in the function).

        ``default_manifest`` is the manifest used when MODEL_MANIFEST is unset (func.py passes
        ``model_manifest.json`` next to itself); a missing default file is not an error as long
        as MODEL_INPUT_SIZE is set.
        """
        try:
            results_bucket, results_prefix = results_location(env)
            return cls(
                model=model_input(env, default_manifest),
                max_pixels=env_int(env, "MAX_PIXELS", cls.max_pixels),
                max_decoded_bytes=env_int(env, "MAX_DECODED_BYTES", cls.max_decoded_bytes, low=1024),
                max_image_bytes=env_int(env, "MAX_IMAGE_BYTES", cls.max_image_bytes),
                max_images=env_int(env, "MAX_IMAGES", cls.max_images),
                predict_url=env.get("PREDICT_URL", "").strip(),
                predict_timeout=env_float(env, "PREDICT_TIMEOUT", cls.predict_timeout),
                predict_attempts=env_int(env, "PREDICT_ATTEMPTS", cls.predict_attempts),
                predict_backoff=env_float(env, "PREDICT_BACKOFF", cls.predict_backoff),
                predict_max_request_bytes=env_int(
                    env, "PREDICT_MAX_REQUEST_BYTES", cls.predict_max_request_bytes, low=1024
                ),
                top_k=env_int(env, "TOP_K", cls.top_k, 1, MAX_TOP_K),
                url_allow_hosts=_hosts(env.get("URL_ALLOW_HOSTS", "")),
                url_connect_timeout=env_float(env, "URL_CONNECT_TIMEOUT", cls.url_connect_timeout),
                url_read_timeout=env_float(env, "URL_READ_TIMEOUT", cls.url_read_timeout),
                url_total_timeout=env_float(env, "URL_TOTAL_TIMEOUT", cls.url_total_timeout),
                url_max_redirects=env_int(env, "URL_MAX_REDIRECTS", cls.url_max_redirects, low=0),
                store_gps=env_bool(env, "STORE_GPS", False),
                auth_token=env.get(AUTH_TOKEN, "").strip(),
                input_bucket=env.get("INPUT_BUCKET", "").strip(),
                results_bucket=results_bucket,
                results_prefix=results_prefix,
                results_index=results_index(env),
                done_check_seconds=env_float(env, "DONE_CHECK_SECONDS", cls.done_check_seconds, low=0.0),
                log_level=log_level(env),
                s3=S3Settings.from_env(env),
            )
        except SettingError as exc:
            raise ConfigError(str(exc)) from exc


def model_input(env: Mapping[str, str], default_manifest: Path | None = None) -> ModelInput:
    """The model input: MODEL_INPUT_SIZE > MODEL_MANIFEST > ``default_manifest``; else ConfigError."""
    explicit = env.get("MODEL_MANIFEST", "").strip()
    manifest: ModelInput | None = None
    if explicit:
        manifest = ModelInput.from_manifest(Path(explicit))
    elif default_manifest is not None and default_manifest.is_file():
        manifest = ModelInput.from_manifest(default_manifest)
    name = env.get("MODEL_INPUT_NAME", "").strip() or (manifest.name if manifest else "images")
    if env.get("MODEL_INPUT_SIZE", "").strip():
        return ModelInput.from_size(env_int(env, "MODEL_INPUT_SIZE", 0, low=8), name)
    if manifest is None:
        where = f" and {default_manifest} does not exist (run `make model`)" if default_manifest else ""
        raise ConfigError(f"model input size unknown: set MODEL_MANIFEST or MODEL_INPUT_SIZE{where}")
    return ModelInput(name=name, size=manifest.size, resize_shorter=manifest.resize_shorter)


