"""What a call asks for, whichever door it came through: objects (``fnvision_common.objects.ObjectRef``,
the one the triggers send too), URLs, uploads, acknowledged no-ops.

The recognisers of ``events`` (dispatch, envelopes, direct requests, CloudEvents) and
``storage_events`` (S3/OCI/MinIO/SeaweedFS notifications) return these as a ``Found`` list, given the
payload and its ``Context``; ``events.parse_request`` gathers them into one ``ParsedRequest``, which
``service`` consumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fnvision_common.objects import ObjectRef


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


Found = list[Input | Ignored]
"""What one recogniser found in its payload, in order."""


@dataclass(frozen=True)
class Context:
    """What a recogniser knows besides the payload itself."""

    headers: Mapping[str, str]
    """The request's headers, lower-cased (read by the raw-body formats only)."""
    depth: int = 0
    """How many envelopes or JSON lists enclose the payload (``events`` refuses more than 5)."""
    default_bucket: str = ""
    """The bucket of a bare ``{"key"}`` (``INPUT_BUCKET``): top-level requests and lists only."""
    max_images: int = 32
    """``MAX_IMAGES``: bounds the parts a multipart upload may have."""

    def inner(self) -> Context:
        """The context of what an envelope holds: one level deeper, and no default bucket."""
        return replace(self, depth=self.depth + 1, default_bucket="")

    def element(self) -> Context:
        """The context of one element of a JSON list: one level deeper, same default bucket."""
        return replace(self, depth=self.depth + 1)


@dataclass
class ParsedRequest:
    """What one call asks for."""

    inputs: list[Input] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    from_event: bool = False
    """True for storage-event doors: failures are answered per item, never for the whole batch."""
