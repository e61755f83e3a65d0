"""Objects from S3-compatible storage: streamed with a byte cap; conditional writes of records.

The boto3 client comes from ``s3client`` (same settings as predict) and is created once per hot
container: at cold start by ``func.py`` (``connect``) when storage is configured, else on first use.
Which objects may be read at all (no results-area object, no impossible name) is decided once,
where the request is parsed (``admission``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fnvision_common.s3client import (
    S3Settings,
    build_client,
    error_code,
    is_not_found,
    is_precondition_failed,
    is_refused_request,
    normalise_etag,
)

from .errors import (
    BadEventError,
    ObjectNotFoundError,
    RecordRefusedError,
    StorageError,
    TooLargeError,
)

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class FetchedObject:
    """Bytes of one object version and its headers."""

    data: bytes
    etag: str
    size: int
    content_type: str | None


class S3Store:
    """`ObjectStore` over boto3; the client is built by ``connect`` (cold start) or on first use."""

    def __init__(self, settings: S3Settings, client_factory: Callable[[S3Settings], Any] | None = None) -> None:
        self._settings = settings
        self._factory = client_factory
        self._client: Any = None

    def connect(self) -> dict[str, float]:
        """Build the client now if it is not built yet; return what it cost (ms, empty if built)."""
        if self._client is not None:
            return {}
        self._client, cost = build_client(self._settings, self._factory)
        log.info("s3 client built", extra={"s3_client": cost})
        return cost

    @property
    def client(self) -> Any:
        """The boto3 client (created once)."""
        if self._client is None:
            self.connect()
        return self._client

    def get(self, bucket: str, key: str, max_bytes: int) -> FetchedObject:
        """Download one object, refusing anything over ``max_bytes``."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore ClientError / EndpointConnectionError / timeouts
            if is_not_found(exc):
                raise ObjectNotFoundError(f"s3://{bucket}/{key} does not exist") from exc
            if is_refused_request(exc):
                # The event names something the store will never serve (a 4xx such as
                # KeyTooLongError or InvalidBucketName): bad input, not an outage to retry.
                raise BadEventError(f"the store refused to read s3://{bucket}/{key[:200]}: {error_code(exc)}") from exc
            raise StorageError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        body = response["Body"]
        try:
            length = int(response.get("ContentLength") or 0)
            if length > max_bytes:
                raise TooLargeError(f"s3://{bucket}/{key} has {length} bytes; the cap is {max_bytes}")
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = body.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise TooLargeError(f"s3://{bucket}/{key} is over the cap of {max_bytes} bytes")
                chunks.append(chunk)
        except TooLargeError:
            raise
        except Exception as exc:
            raise StorageError(f"reading s3://{bucket}/{key} failed: {exc}") from exc
        finally:
            body.close()
        return FetchedObject(
            data=b"".join(chunks),
            etag=normalise_etag(response.get("ETag")),
            size=total,
            content_type=response.get("ContentType"),
        )

    def list_names(self, bucket: str, prefix: str) -> set[str]:
        """Names of the objects directly under ``prefix`` (one LIST: a result folder holds a handful)."""
        try:
            response = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=100)
        except Exception as exc:
            raise StorageError(f"cannot list s3://{bucket}/{prefix}: {exc}") from exc
        return {item["Key"][len(prefix) :] for item in response.get("Contents", [])}

    def delete(self, bucket: str, key: str) -> None:
        """Remove one object (a decode guard's marker); a missing one is fine."""
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if not is_not_found(exc):
                raise StorageError(f"cannot delete s3://{bucket}/{key}: {exc}") from exc

    def put_if_absent(self, bucket: str, key: str, document: dict[str, Any]) -> str:
        """Write a JSON document unless the key exists: returns "created" or "exists"."""
        body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
        return "created" if self.put_bytes_if_absent(bucket, key, body) else "exists"

    def put_bytes_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Write ``body`` unless the key exists; True if written (the result index's entries use it too)."""
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        except Exception as exc:
            if is_precondition_failed(exc):
                return False
            if is_refused_request(exc):
                raise RecordRefusedError(f"the store refused s3://{bucket}/{key}: {error_code(exc)}") from exc
            raise StorageError(f"cannot write s3://{bucket}/{key}: {exc}") from exc
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """A small object's bytes (a claim of the result index), None if it does not exist."""
        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise StorageError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        return body


class RecordIndex:
    """The result index's store (``fnvision_common.result_index.IndexStore``) over an ``S3Store``."""

    def __init__(self, store: S3Store) -> None:
        self._store = store

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Conditional write of an index object."""
        return self._store.put_bytes_if_absent(bucket, key, body)

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """Read an index object (None if missing)."""
        return self._store.get_bytes(bucket, key)
