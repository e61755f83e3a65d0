"""Download a model from object storage (``MODEL_URI=s3://bucket/prefix/``) into a local directory."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError, StorageUnavailableError
from .manifest import MANIFEST_NAME, Manifest
from .s3client import error_code, is_not_found

log = logging.getLogger(__name__)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix/`` into bucket and a prefix that is empty or ends with '/'."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"MODEL_URI={uri!r}: expected s3://bucket/prefix/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _storage_error(exc: Exception, what: str) -> Exception:
    if is_not_found(exc):
        return ModelError(f"model file {what} not found in object storage ({error_code(exc)})")
    code = error_code(exc)
    return StorageUnavailableError(f"cannot download model file {what}: {code or type(exc).__name__}: {exc}")


def _get(client: Any, bucket: str, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(target, "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
    except Exception as exc:  # botocore raises many unrelated types; all mean "could not fetch"
        raise _storage_error(exc, f"s3://{bucket}/{key}") from exc


def _keys_under(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except Exception as exc:
        raise _storage_error(exc, f"s3://{bucket}/{prefix}") from exc
    return keys


def download_model(uri: str, engine: str, cache_dir: str, client: Any) -> Path:
    """Fetch manifest, labels and the engine's artifact (file or tree); return the local model directory.

    Files land in a fresh temporary folder that is renamed into place when complete, so a half
    download is never mistaken for a model. Checksums are verified by the loader.
    """
    bucket, prefix = parse_s3_uri(uri)
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    work = Path(tempfile.mkdtemp(prefix="dl-", dir=root))
    try:
        _get(client, bucket, prefix + MANIFEST_NAME, work / MANIFEST_NAME)
        manifest = Manifest.from_json((work / MANIFEST_NAME).read_bytes())
        _get(client, bucket, prefix + manifest.labels_path, work / manifest.labels_path)
        artifact = manifest.artifact_for(engine)
        key = prefix + artifact.path
        keys = _keys_under(client, bucket, key)
        if key in keys:
            _get(client, bucket, key, work / artifact.path)
        else:
            tree = [k for k in keys if k.startswith(key + "/")]
            if not tree:
                raise ModelError(f"model artifact s3://{bucket}/{key} not found")
            for k in tree:
                _get(client, bucket, k, work / artifact.path / k[len(key) + 1 :])
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("model downloaded", extra={"model_uri": uri, "path": str(final)})
    return final
