"""A reference to one version of one object: what an event names, for the triggers that send events
and for preprocess that reads them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectRef:
    """One version of one object in S3-compatible storage, with what the event that named it said.

    The triggers build these from listings and filer events (ETag normalised: no quotes, exactly what
    S3 HEAD returns) and leave the event fields alone; preprocess fills them in from the event it
    parsed (ETag as the event wrote it: compare through ``s3client.normalise_etag``).
    """

    bucket: str
    key: str
    """The raw object key (already decoded, as S3 stores it)."""
    etag: str = ""
    """'' when the event did not say."""
    size: int | None = None
    content_type: str | None = None
    event_id: str | None = None
    event_time: str | None = None
    event_type: str | None = None
    origin: str = "request"
    """Which door preprocess got it through: request (named directly, as the triggers' own
    references are), oci, aws, minio, ceph, s3, seaweedfs, cloudevent."""
