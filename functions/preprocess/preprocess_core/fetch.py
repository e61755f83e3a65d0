"""One input → its bytes and where they came from, by kind, each under ``MAX_IMAGE_BYTES``.

``Fetched.source`` is the ``source`` block of the image's metadata (docs/contracts.md §5): a stored
object is read through the ``ObjectStore`` (its ETag and type from the store, else from the event),
a URL through the SSRF-safe ``Fetcher`` (``fetch_url``), an upload is already here. A reference
refused where the request was parsed (``admission``) raises its error, unread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fnvision_common.objects import ObjectRef
from fnvision_common.s3client import normalise_etag

from . import metadata
from .deps import Fetcher, ObjectStore
from .errors import TooLargeError
from .inputs import Input, Refused, Upload, UrlRef


@dataclass(frozen=True)
class Fetched:
    """The bytes of one input and the ``source`` block that says where they came from."""

    data: bytes = field(repr=False)
    source: dict[str, Any]


def fetch(item: Input, store: ObjectStore, fetcher: Fetcher, max_bytes: int) -> Fetched:
    """Read one input; raises the ``PreprocessError`` that says why not."""
    if isinstance(item, Refused):
        raise item.error
    if isinstance(item, ObjectRef):
        return _stored(item, store, max_bytes)
    if isinstance(item, UrlRef):
        return _url(item, fetcher, max_bytes)
    return _upload(item, max_bytes)


def event_source(ref: ObjectRef) -> dict[str, Any]:
    """What the event says about an object that could not be read: the ``source`` of its failure record."""
    return metadata.source_info(
        bucket=ref.bucket,
        key=ref.key,
        etag=normalise_etag(ref.etag),
        size=ref.size,
        event_id=ref.event_id,
        event_time=ref.event_time,
        event_type=ref.event_type,
        origin=ref.origin,
    )


def _stored(ref: ObjectRef, store: ObjectStore, max_bytes: int) -> Fetched:
    obj = store.get(ref.bucket, ref.key, max_bytes)
    source = metadata.source_info(
        bucket=ref.bucket,
        key=ref.key,
        etag=obj.etag or normalise_etag(ref.etag),
        size=obj.size,
        content_type=obj.content_type or ref.content_type,
        event_id=ref.event_id,
        event_time=ref.event_time,
        event_type=ref.event_type,
        origin=ref.origin,
    )
    return Fetched(obj.data, source)


def _url(ref: UrlRef, fetcher: Fetcher, max_bytes: int) -> Fetched:
    got = fetcher.fetch(ref.url, max_bytes)
    source = metadata.source_info(
        url=ref.url,
        final_url=got.final_url if got.final_url != ref.url else None,
        size=len(got.data),
        content_type=got.content_type,
        origin="url",
    )
    return Fetched(got.data, source)


def _upload(upload: Upload, max_bytes: int) -> Fetched:
    if len(upload.data) > max_bytes:
        raise TooLargeError(f"upload {upload.name!r} is over the cap of {max_bytes} bytes")
    source = metadata.source_info(
        upload=upload.name, size=len(upload.data), content_type=upload.content_type, origin="upload"
    )
    return Fetched(upload.data, source)
