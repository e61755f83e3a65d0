"""Storage notifications → ``ObjectRef`` inputs: the recognisers of S3 ``Records`` (AWS, MinIO, Ceph,
moto), ``s3:TestEvent``, OCI Events, MinIO top-level webhooks and SeaweedFS filer webhooks.

Each recogniser has the signature of the ``events`` table, ``(payload, ctx) -> Found | None``: ``None``
when the JSON object is not its format, else what it found. Key decoding is per source: S3-style
``Records`` keys are form-encoded (``unquote_plus``: ``+`` → space, ``%2F`` → ``/``); OCI, MinIO
top-level ``Key`` and SeaweedFS paths are raw (a literal ``+`` stays a ``+``). Non-create events are
acknowledged as ``Ignored``; a create event without a usable bucket/key, or with fields of the wrong
JSON type, is a ``BadEventError`` (400).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

from fnvision_common.filer_events import FILER_ROOT, OBJECT_CHANGES, FilerEventError, read_filer_event
from fnvision_common.objects import ObjectRef

from .errors import BadEventError
from .inputs import Context, Found, Ignored, Input

OCI_PREFIX = "com.oraclecloud.objectstorage."
OCI_CREATE_TYPES = frozenset({OCI_PREFIX + "createobject", OCI_PREFIX + "updateobject"})


def s3_records(payload: dict[str, Any], ctx: Context) -> Found | None:
    """S3 notification ``Records`` (AWS, MinIO, Ceph, moto): one item per record."""
    records = payload.get("Records")
    if not isinstance(records, list):
        return None
    return [_s3_record(record) for record in records]


def _s3_record(record: Any) -> Input | Ignored:
    """One S3 notification record: keys are form-encoded."""
    if not isinstance(record, dict):
        raise BadEventError(f"`Records[]` entries must be JSON objects, got {type(record).__name__}")
    if "s3" not in record:
        return Ignored("unsupported_record", detail=text(record, "eventSource", "Records[]"))
    name = text(record, "eventName", "Records[]", numbers=False) or ""
    if not _is_create(name):
        return Ignored("not_a_create_event", event_type=name or None)
    s3 = obj(record, "s3", "Records[]") or {}
    bucket = text(obj(s3, "bucket", "s3") or {}, "name", "s3.bucket", numbers=False)
    item = obj(s3, "object", "s3") or {}
    raw_key = text(item, "key", "s3.object", numbers=False)
    if not bucket or not raw_key:
        raise BadEventError("S3 record without s3.bucket.name / s3.object.key")
    source = text(record, "eventSource", "Records[]") or "s3"
    request_id = text(obj(record, "responseElements", "Records[]") or {}, "x-amz-request-id", "responseElements")
    return ObjectRef(
        bucket=bucket,
        key=unquote_plus(raw_key),
        etag=text(item, "eTag", "s3.object") or text(item, "etag", "s3.object") or "",
        size=int_or_none(item.get("size")),
        content_type=text(item, "contentType", "s3.object"),
        event_id=request_id or text(item, "sequencer", "s3.object"),
        event_time=text(record, "eventTime", "Records[]"),
        event_type=name,
        origin=source.split(":")[0] if ":" in source else source,
    )


def s3_test_event(payload: dict[str, Any], ctx: Context) -> Found | None:
    """The ``s3:TestEvent`` S3 sends when notifications are configured: acknowledged."""
    if payload.get("Event") != "s3:TestEvent":
        return None
    return [Ignored("test_event", event_type="s3:TestEvent")]


def oci_event(payload: dict[str, Any], ctx: Context) -> Found | None:
    """OCI Events (CloudEvents 0.1): raw object names; tolerate fields that vary by version."""
    if "cloudEventsVersion" not in payload and not str(payload.get("eventType", "")).startswith(OCI_PREFIX):
        return None
    event_type = text(payload, "eventType", "event", numbers=False) or ""
    if event_type not in OCI_CREATE_TYPES:
        return [Ignored("not_a_create_event", event_type=event_type or None)]
    ref = oci_data(payload.get("data"), event_type)
    return [replace(ref, event_id=text(payload, "eventID", "event"), event_time=text(payload, "eventTime", "event"))]


def oci_data(data: Any, event_type: str) -> ObjectRef:
    """Bucket, raw object name and ETag from the ``data`` of an OCI object event."""
    if not isinstance(data, dict):
        raise BadEventError("OCI object event without a data object")
    details = obj(data, "additionalDetails", "data") or {}
    bucket = text(details, "bucketName", "data.additionalDetails", numbers=False)
    key = text(data, "resourceName", "data", numbers=False)
    resource_id = text(data, "resourceId", "data") or ""
    if (not bucket or not key) and "/b/" in resource_id and "/o/" in resource_id:
        # /n/<namespace>/b/<bucket>/o/<object name>
        after_b = resource_id.split("/b/", 1)[1]
        bucket = bucket or after_b.split("/o/", 1)[0]
        key = key or after_b.split("/o/", 1)[1]
    if not bucket or not key:
        raise BadEventError("OCI object event without bucketName / resourceName")
    return ObjectRef(
        bucket=bucket,
        key=key,
        etag=text(details, "eTag", "data.additionalDetails") or "",
        event_type=event_type,
        origin="oci",
    )


def minio_top_level(payload: dict[str, Any], ctx: Context) -> Found | None:
    """MinIO webhook without ``Records``: ``EventName`` (old: ``EventType``), ``Key`` = ``<bucket>/<raw key>``."""
    if "EventName" not in payload and "EventType" not in payload:
        return None
    name = (
        text(payload, "EventName", "event", numbers=False) or text(payload, "EventType", "event", numbers=False) or ""
    )
    if not _is_create(name):
        return [Ignored("not_a_create_event", event_type=name or None)]
    full = payload.get("Key")
    if not isinstance(full, str) or "/" not in full.strip("/"):
        raise BadEventError("MinIO event without a `Key` of the form <bucket>/<key>")
    bucket, key = full.split("/", 1)
    return [ObjectRef(bucket=bucket, key=key, event_type=name, origin="minio")]


def seaweedfs_filer(payload: dict[str, Any], ctx: Context) -> Found | None:
    """SeaweedFS filer webhook (read by ``fnvision_common.filer_events``, as the trigger adapter reads it):
    raw path ``/buckets/<bucket>/<key>``, ETag from the entry; SeaweedFS's internal paths are acknowledged."""
    if "event_type" not in payload or not str(payload.get("key", "")).startswith(FILER_ROOT):
        return None
    try:
        event = read_filer_event(payload)
    except FilerEventError as exc:
        raise BadEventError(str(exc)) from exc
    if event.kind not in OBJECT_CHANGES:
        return [Ignored("not_a_create_event", event_type=event.kind or None)]
    if event.internal:
        return [Ignored("internal_path", event_type=event.kind, detail=event.path)]
    return [replace(event.ref(), event_type=event.kind, origin="seaweedfs")]


def _is_create(name: str) -> bool:
    """An S3-style event name (``ObjectCreated:Put``, MinIO's ``s3:ObjectCreated:Put``) that creates an object."""
    return (name[3:] if name.startswith("s3:") else name).startswith("ObjectCreated")


def obj(parent: dict[str, Any], name: str, where: str) -> dict[str, Any] | None:
    """``parent[name]`` when it is a JSON object, None when absent/null; BadEventError otherwise."""
    value = parent.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadEventError(f"`{where}.{name}` must be a JSON object, got {type(value).__name__}")
    return value


def text(parent: dict[str, Any], name: str, where: str, *, numbers: bool = True) -> str | None:
    """``parent[name]`` as a string, None when absent/null/empty; BadEventError for other JSON types.

    Numbers are accepted for informative fields (ids, ETags), not for names (``numbers=False``).
    """
    value = parent.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise BadEventError(f"`{where}.{name}` must be a string, got {type(value).__name__}")


def opt_str(value: Any) -> str | None:
    """None for missing/empty values, else the value as a string."""
    return None if value is None or value == "" else str(value)


def int_or_none(value: Any) -> int | None:
    """An integer, or None for anything that is not one (sizes are informative only)."""
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError, OverflowError):
        return None
