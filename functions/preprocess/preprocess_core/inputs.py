"""What a call asks for, whichever door it came through: objects, URLs, uploads, acknowledged no-ops.

``events`` (dispatch, direct requests, CloudEvents) and ``storage_events`` (S3/OCI/MinIO/SeaweedFS
notifications) build these; ``service`` consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ObjectRef:
    """An object in S3-compatible storage, with what the event said about it."""

    bucket: str
    key: str
    etag: str = ""
    size: int | None = None
    content_type: str | None = None
    event_id: str | None = None
    event_time: str | None = None
    event_type: str | None = None
    origin: str = "request"
    """Which door: request, oci, aws, minio, ceph, s3, seaweedfs, cloudevent."""


@dataclass(frozen=True)
class UrlRef:
    """An image on the web."""

    url: str


@dataclass(frozen=True)
class Upload:
    """Image bytes that came in the request itself."""

    name: str
    data: bytes = field(repr=False)
    content_type: str | None = None


Input = ObjectRef | UrlRef | Upload


@dataclass(frozen=True)
class Ignored:
    """An event acknowledged without work (test events, deletions, ...)."""

    reason: str
    event_type: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the answer."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ParsedRequest:
    """What one call asks for."""

    inputs: list[Input] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    from_event: bool = False
    """True for storage-event doors: failures are answered per item, never for the whole batch."""
