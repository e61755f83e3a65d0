"""Result documents (docs/contracts.md §5), written once with a conditional put, and indexed.

With an index store (RESULTS_INDEX, on by default) each document is written through
``fnvision_common.result_index.write_indexed``: a claim, the index entries the results function
lists, then the document itself, so that a document that exists is always fully indexed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from fnvision_common.result_index import RESULT_SCHEMA, EntryObject, IndexStore, format_time, parse_time, write_indexed
from fnvision_common.result_keys import result_key
from fnvision_common.s3client import (
    error_code,
    is_not_found,
    is_precondition_failed,
    is_refused_request,
    normalise_etag,
)

from .codecs.base import Label, Source
from .errors import PredictError, RecordRefusedError, StorageUnavailableError

SCHEMA = RESULT_SCHEMA
CREATED = "created"
EXISTS = "exists"
FAILED = "failed"
"""The write failed: ``error`` says why; retryable when its code is storage_unavailable."""
_RESERVED = ("schema", "predictions", "model", "timings", "call_id", "cold_start", "recorded_at")

log = logging.getLogger(__name__)


class ResultStore(Protocol):
    """Where result documents go."""

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Write body unless key exists; return True if written, False if it already existed."""
        ...


class S3ResultStore:
    """A boto3 S3 client with ``PutObject(IfNoneMatch="*")``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Conditional create; 412 means another call recorded it first."""
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        except Exception as exc:  # ClientError, EndpointConnectionError, timeouts, ...
            if is_precondition_failed(exc):
                return False
            code = error_code(exc) or type(exc).__name__
            if is_refused_request(exc):
                raise RecordRefusedError(f"the store refused s3://{bucket}/{key}: {code}: {exc}") from exc
            raise StorageUnavailableError(f"cannot record s3://{bucket}/{key}: {code}: {exc}") from exc
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, None if missing (what the index's claims and duplicates need)."""
        try:
            body: bytes = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise StorageUnavailableError(f"cannot read s3://{bucket}/{key}: {error_code(exc) or exc}") from exc
        return body


def build_document(
    source: Source,
    predictions: Sequence[Label],
    model: Mapping[str, str],
    timings: Mapping[str, float],
    call_id: str | None,
    cold_start: bool,
    recorded_at: datetime,
) -> dict[str, Any]:
    """Return the result document; the source's metadata (source, image, exif, ...) is copied in."""
    doc: dict[str, Any] = {"schema": SCHEMA}
    for name, value in source.metadata.items():
        if name not in _RESERVED:
            doc[name] = value
    given = doc.get("source")
    doc["source"] = {
        **(given if isinstance(given, dict) else {}),
        "bucket": source.bucket,
        "key": source.key,
        "etag": normalise_etag(source.etag),
    }
    doc.update(
        predictions=[label.to_dict() for label in predictions],
        model=dict(model),
        timings=dict(timings),
        call_id=call_id,
        cold_start=cold_start,
        recorded_at=format_time(recorded_at),
    )
    return doc


def record(
    store: ResultStore,
    bucket: str,
    prefix: str,
    source: Source,
    model: Mapping[str, str],
    doc: Mapping[str, Any],
    index: IndexStore | None = None,
    run: Callable[[Callable[[EntryObject], bool], Iterable[EntryObject]], Iterator[bool]] = map,
) -> dict[str, Any]:
    """Write one document under its key (result_keys); return {"bucket","key","status"[,"error"]}.

    With ``index``, the document is indexed too (``write_indexed``; ``run`` maps the entry writes) and
    its ``recorded_at`` becomes the claimed one when an earlier attempt claimed the record first.
    A failed write is this object's outcome alone (status ``failed`` with the error), so one object
    the store refuses or cannot take never keeps the others of its batch from being recorded.
    """
    key = result_key(prefix, source.bucket, source.key, normalise_etag(source.etag), model["name"], model["version"])

    def put(document: Mapping[str, Any]) -> bool:
        return store.put_if_absent(bucket, key, json.dumps(document, separators=(",", ":")).encode())

    try:
        if index is None:
            created = put(doc)
        else:
            created = write_indexed(
                index, bucket, prefix, key, lambda when: {**doc, "recorded_at": format_time(when)},
                parse_time(doc["recorded_at"]), put, run,
            )
    except PredictError as exc:
        log.warning("result not recorded", extra={"bucket": bucket, "key": key, "code": exc.code, "error": exc.message})
        return {"bucket": bucket, "key": key, "status": FAILED, "error": exc.detail()}
    status = CREATED if created else EXISTS
    log.info("result recorded", extra={"bucket": bucket, "key": key, "status": status})
    return {"bucket": bucket, "key": key, "status": status}
