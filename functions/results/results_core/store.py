"""Reading the results bucket: index listings, documents, result folders, presigned source URLs.

The boto3 client comes from ``fnvision_common.s3client`` (the S3_* settings both other functions
read) and is built once per hot container by ``func.py``. Every storage failure becomes
``StorageError`` (502), a missing object ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from fnvision_common.s3client import error_code, is_not_found, normalise_etag

from .errors import BadQueryError, ResultsError, StorageError

_PAGE = 1000


class Reader(Protocol):
    """What the queries need from the store (``S3Reader``; tests may pass another)."""

    def keys(self, bucket: str, prefix: str, start_after: str = "", first: int = 1000) -> Iterator[str]:
        """Keys under ``prefix`` in ascending order, after ``start_after`` (``first``: the first request's size)."""
        ...

    def get_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        """A JSON document, or None if it does not exist."""
        ...

    def get_text(self, bucket: str, key: str) -> str | None:
        """A small text object, or None if it does not exist."""
        ...

    def names(self, bucket: str, folder: str) -> list[str]:
        """Names of the objects directly in ``folder`` (one LIST)."""
        ...

    def etag(self, bucket: str, key: str) -> str | None:
        """The current ETag of an object, or None if it does not exist."""
        ...

    def presign(self, bucket: str, key: str, seconds: int) -> str:
        """A URL that GETs the object for ``seconds``, signed here (no request)."""
        ...


class S3Reader:
    """``Reader`` over a boto3 S3 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _fail(self, what: str, exc: Exception) -> ResultsError:
        if type(exc).__name__ == "ParamValidationError":
            # botocore refuses the name before any request (a bucket S3 cannot have): bad input, no outage.
            return BadQueryError(f"cannot {what[:200]}: {str(exc).splitlines()[-1][:200]}")
        return StorageError(f"cannot {what}: {error_code(exc) or type(exc).__name__}: {exc}")

    def keys(self, bucket: str, prefix: str, start_after: str = "", first: int = _PAGE) -> Iterator[str]:
        """Page through ListObjectsV2 lazily: a query stops as soon as it has its page. The first request
        asks for ``first`` keys (a page of 50 needs about that many, not 1,000 keys of XML), the next 1,000."""
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(first, _PAGE))}
        if start_after:
            args["StartAfter"] = start_after
        while True:
            try:
                page = self._client.list_objects_v2(**args)
            except Exception as exc:
                if is_not_found(exc):
                    return  # no results bucket yet: nothing recorded
                raise self._fail(f"list s3://{bucket}/{prefix}", exc) from exc
            for item in page.get("Contents", []):
                yield item["Key"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args.pop("StartAfter", None)
            args.update(ContinuationToken=token, MaxKeys=_PAGE)

    def _get(self, bucket: str, key: str) -> bytes | None:
        try:
            body: bytes = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise self._fail(f"read s3://{bucket}/{key}", exc) from exc
        return body

    def get_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        """A document; one that is not a JSON object counts as missing (nothing we wrote)."""
        body = self._get(bucket, key)
        if body is None:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def get_text(self, bucket: str, key: str) -> str | None:
        """A small UTF-8 object (a hashed index entry's document key)."""
        body = self._get(bucket, key)
        return None if body is None else body.decode("utf-8", "surrogatepass")

    def names(self, bucket: str, folder: str) -> list[str]:
        """One LIST with a delimiter: a result folder holds a handful of objects."""
        try:
            page = self._client.list_objects_v2(Bucket=bucket, Prefix=folder, Delimiter="/", MaxKeys=_PAGE)
        except Exception as exc:
            if is_not_found(exc):
                return []
            raise self._fail(f"list s3://{bucket}/{folder}", exc) from exc
        return [item["Key"][len(folder) :] for item in page.get("Contents", [])]

    def etag(self, bucket: str, key: str) -> str | None:
        """HEAD the source object."""
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc) or error_code(exc) in {"403", "400"}:
                return None  # gone, or a bucket/key this function may not read: no current version known
            raise self._fail(f"read s3://{bucket}/{key}", exc) from exc
        return normalise_etag(head.get("ETag"))

    def presign(self, bucket: str, key: str, seconds: int) -> str:
        """``generate_presigned_url`` signs locally with the function's credentials."""
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds
        )
        return url
