"""Object keys of result documents and failure records: the only definition.

Part of ``fnvision-common`` (``common/``): both functions install it, and ``triggers`` imports it
too (backfill needs the same keys to skip done work).

One folder per source object *version* (its ETag), so a re-upload gets a fresh result and a new
model version gets its own document next to the old one:

    {prefix}{src_bucket}/{src_key}/{etag}/{model_name}@{model_version}.json
    {prefix}{src_bucket}/{src_key}/{etag}/failure.json
    {prefix}{src_bucket}/{src_key}/{etag}/attempt-{n}.json   (only while a risky decode runs)

S3 keys are at most 1,024 bytes of UTF-8. A legal source key close to that limit would make the
natural form too long (the write is refused, and before this rule the event was retried forever),
so whenever the natural key of a document would not fit, the folder takes a fixed-length form:

    {prefix}~long/{src_bucket}/{sha256(src_key) hex}/{etag or sha256(etag)}/...

``~`` cannot start a bucket name (S3, OCI and MinIO allow only lowercase letters, digits, ``.``,
``-`` and ``_``), so no natural key can ever equal a fixed-length one. The document inside still
carries the full source key.
"""

from __future__ import annotations

import hashlib

from fnvision_common.s3client import normalise_etag

FAILURE_NAME = "failure.json"
MAX_KEY_BYTES = 1024
"""S3's (and OCI's, MinIO's, SeaweedFS's S3 API's) limit on an object key, in UTF-8 bytes."""
LONG_FOLDER = "~long"
_MAX_ETAG_CHARS = 128
"""ETags longer than this (no store makes them; only a forged event can) are hashed in the long form."""
_MAX_NAME_BYTES = 128
"""Room kept at the end of a folder for a document name (``failure.json``, ``{model}@{version}.json``)."""


class ResultKeyError(ValueError):
    """A source reference is missing a part that the key needs, or has one no store can hold."""


def check_object_key(key: str) -> bytes:
    """Return ``key`` as UTF-8 if it can name an S3 object; ``ResultKeyError`` says why not.

    Keys come from events and requests: one that cannot be encoded (a lone UTF-16 surrogate from a
    JSON ``\\ud800`` escape) or is longer than S3 allows names no object, so it is bad input, never
    a storage failure worth retrying.
    """
    if not key:
        raise ResultKeyError("the object key is empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ResultKeyError(f"the object key is not valid Unicode text ({exc.reason} at {exc.start})") from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise ResultKeyError(f"the object key has {len(encoded)} bytes; S3 keys have at most {MAX_KEY_BYTES}")
    return encoded


def check_bucket_name(bucket: str) -> None:
    """Refuse (``ResultKeyError``) a bucket name no store accepts: empty, over 255 characters, or with ``/``.

    (S3 allows 63 characters, OCI 256; the slash matters here: it would shift every key's folders.)
    """
    if not bucket or "/" in bucket or len(bucket) > 255:
        raise ResultKeyError(f"{bucket[:80]!r} is not a bucket name")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def folder(prefix: str, bucket: str, key: str, etag: str) -> str:
    """The folder of one source object version: natural when it fits, else the fixed-length form."""
    etag = normalise_etag(etag)
    if not bucket or not key or not etag:
        raise ResultKeyError(f"need bucket, key and etag (got {bucket!r}, {key[:80]!r}, {etag[:80]!r})")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    natural = f"{prefix}{bucket}/{key}/{etag}/"
    try:
        fits = len(natural.encode("utf-8")) + _MAX_NAME_BYTES <= MAX_KEY_BYTES and "/" not in etag
    except UnicodeEncodeError:
        fits = False
    if fits:
        return natural
    short_etag = etag if len(etag) <= _MAX_ETAG_CHARS and "/" not in etag and etag.isascii() else _sha256(etag)
    return f"{prefix}{LONG_FOLDER}/{bucket}/{_sha256(key)}/{short_etag}/"


def result_key(prefix: str, bucket: str, key: str, etag: str, model_name: str, model_version: str) -> str:
    """Key of the result document for one source object version and one model version."""
    if not model_name or not model_version:
        raise ResultKeyError("need model name and version")
    if len(f"{model_name}@{model_version}.json".encode()) > _MAX_NAME_BYTES:
        raise ResultKeyError(f"model name@version is longer than {_MAX_NAME_BYTES - 5} bytes")
    return f"{folder(prefix, bucket, key, etag)}{model_name}@{model_version}.json"


def failure_key(prefix: str, bucket: str, key: str, etag: str) -> str:
    """Key of the failure record for a source object version that could not be processed."""
    return f"{folder(prefix, bucket, key, etag)}{FAILURE_NAME}"


def attempt_key(prefix: str, bucket: str, key: str, etag: str, attempt: int) -> str:
    """Key of the marker a risky decode leaves while it runs (preprocess_core/decode_guard.py)."""
    return f"{folder(prefix, bucket, key, etag)}attempt-{attempt}.json"


def is_results_location(bucket: str, key: str, results_bucket: str, results_prefix: str) -> bool:
    """True if (bucket, key) lies in the results area: such objects must never be processed."""
    if bucket != results_bucket:
        return False
    return key.startswith(results_prefix) if results_prefix else True
