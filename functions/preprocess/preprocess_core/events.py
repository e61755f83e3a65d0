"""Every door into preprocess → a list of inputs (objects, URLs, uploads) plus acknowledged no-ops.

Doors (see README): OCI CloudEvents 0.1, CloudEvents 1.0 structured/binary, S3 `Records` (AWS, MinIO,
Ceph, moto), MinIO top-level `EventName`/`Key`, SNS and SQS envelopes, SeaweedFS filer webhooks,
`{"bucket","key"}`, `{"url"}`, Classy `{"name": url}`, JSON lists of those, raw `image/*` bodies and
multipart uploads.

Key decoding is per source: S3-style `Records` keys are form-encoded (`unquote_plus`: `+` → space,
`%2F` → `/`); every other source carries raw keys, where a literal `+` stays a `+`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote_plus

from . import envelopes, multipart
from .errors import BadEventError, TooManyImagesError

OCI_PREFIX = "com.oraclecloud.objectstorage."
OCI_CREATE_TYPES = frozenset({OCI_PREFIX + "createobject", OCI_PREFIX + "updateobject"})
_MAX_DEPTH = 5
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


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


def parse_request(
    body: bytes, headers: Mapping[str, str], *, max_images: int = 32, default_bucket: str = ""
) -> ParsedRequest:
    """Turn a request body + lower-cased headers into inputs; raise BadEventError if unrecognised."""
    content_type = headers.get("content-type", "")
    base = content_type.split(";")[0].strip().lower()
    ce = envelopes.binary_cloudevent(headers, body)
    if ce is not None:
        out = ParsedRequest(from_event=True)
        _cloudevent(ce, out, 0)
    elif base == "multipart/form-data":
        parts = multipart.image_parts(body, content_type, max_parts=max_images + 16)
        out = ParsedRequest(
            inputs=[Upload(p.filename or f"{p.name}[{i}]", p.data, p.content_type) for i, p in enumerate(parts)]
        )
    elif base.startswith("image/") or base == "application/octet-stream" or looks_like_image(body):
        name = headers.get("x-filename") or headers.get("fn-http-h-x-filename") or "upload"
        out = ParsedRequest(inputs=[Upload(name, body, base or None)])
    elif not body.strip():
        raise BadEventError("empty request body: send an event, {bucket,key}, {url} or an image")
    else:
        out = ParsedRequest()
        _payload(envelopes.loads_json(body, "request body"), out, 0, default_bucket)
    if not out.inputs and not out.ignored:
        raise BadEventError("the request names no image")
    out.inputs = _dedupe(out.inputs)
    if len(out.inputs) > max_images:
        raise TooManyImagesError(f"{len(out.inputs)} images in one call; the limit is {max_images} (MAX_IMAGES)")
    return out


def looks_like_image(body: bytes) -> bool:
    """Sniff common image signatures (JSON never starts with these)."""
    return body.startswith(_IMAGE_MAGIC) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def _dedupe(inputs: list[Input]) -> list[Input]:
    """Drop repeated objects (same bucket, key, etag): S3 may deliver one upload twice."""
    seen: set[tuple[str, str, str]] = set()
    out: list[Input] = []
    for item in inputs:
        if isinstance(item, ObjectRef):
            ident = (item.bucket, item.key, item.etag)
            if ident in seen:
                continue
            seen.add(ident)
        out.append(item)
    return out


def _payload(payload: Any, out: ParsedRequest, depth: int, default_bucket: str = "") -> None:
    if depth > _MAX_DEPTH:
        raise BadEventError("envelopes nested too deeply")
    if isinstance(payload, list):
        for item in payload:
            _payload(item, out, depth + 1, default_bucket)
        return
    if not isinstance(payload, dict):
        raise BadEventError(f"expected a JSON object, got {type(payload).__name__}")

    sns = envelopes.sns_message(payload)
    if sns is not None:
        out.from_event = True
        kind, message = sns
        if message is None:
            out.ignored.append(Ignored("sns_" + _snake(kind), detail=_opt_str(payload.get("TopicArn"))))
        else:
            _payload(message, out, depth + 1)
        return
    for unwrap in (envelopes.sqs_bodies, envelopes.lambda_sns_messages):
        inner = unwrap(payload)
        if inner is not None:
            out.from_event = True
            for body in inner:
                _payload(body, out, depth + 1)
            return
    if isinstance(payload.get("Records"), list):
        out.from_event = True
        for record in payload["Records"]:
            _s3_record(record, out)
        return
    if payload.get("Event") == "s3:TestEvent":
        out.from_event = True
        out.ignored.append(Ignored("test_event", event_type="s3:TestEvent"))
        return
    if "cloudEventsVersion" in payload or str(payload.get("eventType", "")).startswith(OCI_PREFIX):
        out.from_event = True
        _oci_event(payload, out)
        return
    ce = envelopes.structured_cloudevent(payload)
    if ce is not None:
        out.from_event = True
        _cloudevent(ce, out, depth)
        return
    if "EventName" in payload or "EventType" in payload:
        out.from_event = True
        _minio_top_level(payload, out)
        return
    if "event_type" in payload and str(payload.get("key", "")).startswith("/buckets/"):
        out.from_event = True
        _seaweedfs_filer(payload, out)
        return
    _request(payload, out, default_bucket)


def _request(payload: dict[str, Any], out: ParsedRequest, default_bucket: str) -> None:
    """`{"bucket","key"}`, `{"url"}`, `{"urls": [...]}`, Classy `{"name": url}`."""
    if "key" in payload:
        bucket = payload.get("bucket") or default_bucket
        key = payload.get("key")
        if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
            raise BadEventError("`bucket` and `key` must be non-empty strings")
        etag = payload.get("etag") or ""
        out.inputs.append(ObjectRef(bucket=bucket, key=key, etag=str(etag)))
        return
    if "url" in payload or "urls" in payload:
        urls = payload.get("urls") if "urls" in payload else [payload.get("url")]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
            raise BadEventError("`url` must be a non-empty string (`urls` a list of them)")
        out.inputs.extend(UrlRef(u) for u in urls)
        return
    name = payload.get("name")
    if isinstance(name, str) and name.lower().startswith(("http://", "https://")):
        out.inputs.append(UrlRef(name))
        return
    keys = ", ".join(sorted(str(k) for k in payload)[:8])
    raise BadEventError(f"unrecognised request (keys: {keys or 'none'})")


def _s3_record(record: Any, out: ParsedRequest) -> None:
    """One S3 notification record (AWS, MinIO, Ceph, moto): keys are form-encoded."""
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        out.ignored.append(Ignored("unsupported_record", detail=_opt_str(_get(record, "eventSource"))))
        return
    name = str(record.get("eventName") or "")
    event_type = name[3:] if name.startswith("s3:") else name
    if not event_type.startswith("ObjectCreated"):
        out.ignored.append(Ignored("not_a_create_event", event_type=name or None))
        return
    s3 = record["s3"]
    bucket = _get(s3, "bucket", "name")
    obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
    raw_key = obj.get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(raw_key, str) or not raw_key:
        raise BadEventError("S3 record without s3.bucket.name / s3.object.key")
    source = str(record.get("eventSource") or "s3")
    out.inputs.append(
        ObjectRef(
            bucket=bucket,
            key=unquote_plus(raw_key),
            etag=str(obj.get("eTag") or obj.get("etag") or ""),
            size=_int_or_none(obj.get("size")),
            content_type=_opt_str(obj.get("contentType")),
            event_id=_opt_str(_get(record, "responseElements", "x-amz-request-id") or obj.get("sequencer")),
            event_time=_opt_str(record.get("eventTime")),
            event_type=name,
            origin=source.split(":")[0] if ":" in source else source,
        )
    )


def _oci_event(payload: dict[str, Any], out: ParsedRequest) -> None:
    """OCI Events (CloudEvents 0.1): raw object names; tolerate fields that vary by version."""
    event_type = str(payload.get("eventType") or "")
    if event_type not in OCI_CREATE_TYPES:
        out.ignored.append(Ignored("not_a_create_event", event_type=event_type or None))
        return
    ref = _oci_data(payload.get("data"), event_type)
    out.inputs.append(
        replace(ref, event_id=_opt_str(payload.get("eventID")), event_time=_opt_str(payload.get("eventTime")))
    )


def _oci_data(data: Any, event_type: str) -> ObjectRef:
    if not isinstance(data, dict):
        raise BadEventError("OCI object event without a data object")
    found = data.get("additionalDetails")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    bucket = details.get("bucketName")
    key = data.get("resourceName")
    resource_id = str(data.get("resourceId") or "")
    if (not bucket or not key) and "/b/" in resource_id and "/o/" in resource_id:
        # /n/<namespace>/b/<bucket>/o/<object name>
        after_b = resource_id.split("/b/", 1)[1]
        bucket = bucket or after_b.split("/o/", 1)[0]
        key = key or after_b.split("/o/", 1)[1]
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise BadEventError("OCI object event without bucketName / resourceName")
    return ObjectRef(
        bucket=bucket,
        key=key,
        etag=str(details.get("eTag") or ""),
        event_type=event_type,
        origin="oci",
    )


def _cloudevent(ce: envelopes.CloudEvent, out: ParsedRequest, depth: int) -> None:
    """CloudEvents 1.0: OCI object types by type, anything else by what its data contains."""
    if ce.type.startswith(OCI_PREFIX):
        if ce.type not in OCI_CREATE_TYPES:
            out.ignored.append(Ignored("not_a_create_event", event_type=ce.type))
            return
        ref = _oci_data(ce.data, ce.type)
        out.inputs.append(replace(ref, event_id=ce.id, event_time=ce.time, origin="cloudevent"))
        return
    if isinstance(ce.data, bytes):
        out.inputs.append(Upload(ce.subject or ce.id or "upload", ce.data, ce.datacontenttype))
        return
    if ce.data is None:
        raise BadEventError(f"CloudEvent {ce.type!r} without data")
    inner = ParsedRequest()
    _payload(ce.data, inner, depth + 1)
    for item in inner.inputs:
        if isinstance(item, ObjectRef):
            item = replace(
                item,
                event_id=item.event_id or ce.id,
                event_time=item.event_time or ce.time,
                event_type=item.event_type or ce.type,
                origin=item.origin if item.origin != "request" else "cloudevent",
            )
        out.inputs.append(item)
    out.ignored.extend(inner.ignored)


def _minio_top_level(payload: dict[str, Any], out: ParsedRequest) -> None:
    """MinIO webhook without Records: `Key` is `<bucket>/<unescaped key>`."""
    name = str(payload.get("EventName") or payload.get("EventType") or "")
    event_type = name[3:] if name.startswith("s3:") else name
    if not event_type.startswith("ObjectCreated"):
        out.ignored.append(Ignored("not_a_create_event", event_type=name or None))
        return
    full = payload.get("Key")
    if not isinstance(full, str) or "/" not in full.strip("/"):
        raise BadEventError("MinIO event without a `Key` of the form <bucket>/<key>")
    bucket, key = full.split("/", 1)
    out.inputs.append(ObjectRef(bucket=bucket, key=key, event_type=name, origin="minio"))


def _seaweedfs_filer(payload: dict[str, Any], out: ParsedRequest) -> None:
    """SeaweedFS filer webhook: raw path `/buckets/<bucket>/<key>`; internal paths are skipped."""
    kind = str(payload.get("event_type"))
    if kind not in {"create", "update"}:
        out.ignored.append(Ignored("not_a_create_event", event_type=kind))
        return
    path = str(payload["key"])[len("/buckets/") :]
    bucket, _, key = path.partition("/")
    entry = _get(payload, "message", "new_entry")
    if (
        not key
        or bucket.startswith(".")
        or key.startswith(".uploads/")
        or (isinstance(entry, dict) and entry.get("is_directory"))
    ):
        out.ignored.append(Ignored("internal_path", event_type=kind, detail=str(payload["key"])))
        return
    attributes = entry.get("attributes", {}) if isinstance(entry, dict) else {}
    out.inputs.append(
        ObjectRef(
            bucket=bucket,
            key=key,
            size=_int_or_none(attributes.get("file_size")),
            content_type=_opt_str(attributes.get("mime")) or None,
            event_type=kind,
            origin="seaweedfs",
        )
    )


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
