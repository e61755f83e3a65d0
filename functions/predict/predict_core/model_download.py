"""Download a model from object storage (``MODEL_URI=s3://bucket/prefix/``) into a local directory."""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fnvision_common.s3client import error_code, is_not_found

from .errors import ConfigError, ModelError, StorageUnavailableError
from .manifest import MANIFEST_NAME, Manifest, artifact_for, check_files
from .manifest import parse as parse_manifest

log = logging.getLogger(__name__)

_TMP_PREFIX = ".dl-"
_STALE_S = 3600.0
"""A temporary download folder untouched this long belongs to a dead container (Fn timeouts are <= 300 s)."""


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


def _fetch(client: Any, bucket: str, prefix: str, manifest: Manifest, engine: str, work: Path) -> None:
    """Download labels and the engine's artifact (a file, or a tree such as the SavedModel)."""
    _get(client, bucket, prefix + manifest.labels_path, work / manifest.labels_path)
    artifact = artifact_for(manifest, engine)
    key = prefix + artifact.path
    keys = _keys_under(client, bucket, key)
    if key in keys:
        _get(client, bucket, key, work / artifact.path)
        return
    tree = [k for k in keys if k.startswith(key + "/")]
    if not tree:
        raise ModelError(f"model artifact s3://{bucket}/{key} not found")
    for k in tree:
        _get(client, bucket, k, work / artifact.path / k[len(key) + 1 :])


def _usable(folder: Path, manifest_bytes: bytes, manifest: Manifest, engine: str) -> bool:
    """True if folder holds exactly this manifest and verified files for the engine."""
    try:
        if (folder / MANIFEST_NAME).read_bytes() != manifest_bytes:
            return False
        check_files(folder, manifest, engine, hashes=True)
    except (OSError, ModelError):
        return False
    return True


def _publish(work: Path, final: Path, manifest_bytes: bytes, manifest: Manifest, engine: str) -> Path:
    """Rename the verified download to its content-addressed name, or adopt an equal one already there.

    ``rename`` is atomic and refuses a non-empty target: whoever publishes first wins and every
    other container reuses that folder (theirs is removed by the caller). A folder under that name
    that does not verify (left by something else) is moved aside first, never deleted in place.
    """
    for _ in range(3):
        try:
            work.rename(final)
            return final
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if _usable(final, manifest_bytes, manifest, engine):
            return final
        trash = final.with_name(f"{_TMP_PREFIX}old-{uuid.uuid4().hex}")
        try:
            final.rename(trash)
        except FileNotFoundError:  # another container moved it aside first
            continue
        shutil.rmtree(trash, ignore_errors=True)
    raise ModelError(f"cannot publish the downloaded model in {final.parent}: the folder keeps changing")


def _sweep(root: Path) -> None:
    """Remove temporary folders of downloads that died (a container killed mid-download)."""
    limit = time.time() - _STALE_S
    for path in root.glob(_TMP_PREFIX + "*"):
        try:
            if path.stat().st_mtime < limit:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def download_model(uri: str, engine: str, cache_dir: str, client: Any) -> Path:
    """Return a local, verified copy of manifest, labels and the engine's artifact of an s3:// model.

    Several containers may share ``cache_dir`` and start at once: each downloads into its own
    temporary folder, verifies every sha256 there, then publishes it atomically under a name made of
    the manifest's sha256 and the engine. If that folder already exists and verifies, it is reused
    (without downloading more than the manifest) and the temporary folder is discarded. A published
    folder is never modified, so a reader never sees files disappear under it.
    """
    bucket, prefix = parse_s3_uri(uri)
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    work = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        _get(client, bucket, prefix + MANIFEST_NAME, work / MANIFEST_NAME)
        manifest_bytes = (work / MANIFEST_NAME).read_bytes()
        manifest = parse_manifest(manifest_bytes)
        final = root / f"{hashlib.sha256(manifest_bytes).hexdigest()[:32]}-{engine}"
        if _usable(final, manifest_bytes, manifest, engine):
            log.info("model found in cache", extra={"model_uri": uri, "path": str(final)})
            return final
        _fetch(client, bucket, prefix, manifest, engine, work)
        check_files(work, manifest, engine, hashes=True)
        published = _publish(work, final, manifest_bytes, manifest, engine)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when it was published
    log.info("model downloaded", extra={"model_uri": uri, "path": str(published)})
    return published
