"""Object keys of result documents and failure records: the only definition.

Single source: ``common/result_keys.py``; ``make sync`` copies it into both function folders and
``triggers`` imports it from ``common`` (backfill needs the same keys to skip done work).

One folder per source object *version* (its ETag), so a re-upload gets a fresh result and a new
model version gets its own document next to the old one:

    {prefix}{src_bucket}/{src_key}/{etag}/{model_name}@{model_version}.json
    {prefix}{src_bucket}/{src_key}/{etag}/failure.json
"""

from __future__ import annotations

FAILURE_NAME = "failure.json"


class ResultKeyError(ValueError):
    """A source reference is missing a part that the key needs."""


def _folder(prefix: str, bucket: str, key: str, etag: str) -> str:
    etag = etag.strip().strip('"')
    if not bucket or not key or not etag:
        raise ResultKeyError(f"need bucket, key and etag (got {bucket!r}, {key!r}, {etag!r})")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"{prefix}{bucket}/{key}/{etag}/"


def result_key(prefix: str, bucket: str, key: str, etag: str, model_name: str, model_version: str) -> str:
    """Key of the result document for one source object version and one model version."""
    if not model_name or not model_version:
        raise ResultKeyError("need model name and version")
    return f"{_folder(prefix, bucket, key, etag)}{model_name}@{model_version}.json"


def failure_key(prefix: str, bucket: str, key: str, etag: str) -> str:
    """Key of the failure record for a source object version that could not be processed."""
    return f"{_folder(prefix, bucket, key, etag)}{FAILURE_NAME}"


def is_results_location(bucket: str, key: str, results_bucket: str, results_prefix: str) -> bool:
    """True if (bucket, key) lies in the results area: such objects must never be processed."""
    if bucket != results_bucket:
        return False
    return key.startswith(results_prefix) if results_prefix else True
