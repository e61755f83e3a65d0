"""Every door into preprocess → a list of inputs (objects, URLs, uploads) plus acknowledged no-ops.

Doors (see README): OCI CloudEvents 0.1, CloudEvents 1.0 structured/binary, S3 `Records` (AWS, MinIO,
Ceph, moto), MinIO top-level `EventName`/`Key`, SNS and SQS envelopes, SeaweedFS filer webhooks,
`{"bucket","key"}`, `{"url"}`, Classy `{"name": url}`, JSON lists of those, raw `image/*` bodies and
multipart uploads.

This module recognises the door and unwraps envelopes; storage notifications are parsed by
``storage_events`` (where keys are decoded per source), and the input types live in ``inputs``
(re-exported here). Malformed bodies — invalid or too deeply nested JSON, wrong JSON types at any
level — are a ``BadEventError`` (400 ``bad_event``), never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from . import envelopes, multipart, storage_events
from .errors import BadEventError, TooManyImagesError
from .inputs import Ignored, Input, ObjectRef, ParsedRequest, Upload, UrlRef
from .storage_events import OCI_CREATE_TYPES, OCI_PREFIX

__all__ = [
    "OCI_CREATE_TYPES",
    "OCI_PREFIX",
    "Ignored",
    "Input",
    "ObjectRef",
    "ParsedRequest",
    "Upload",
    "UrlRef",
    "looks_like_image",
    "parse_request",
]
_MAX_DEPTH = 5
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def parse_request(
    body: bytes, headers: Mapping[str, str], *, max_images: int = 32, default_bucket: str = ""
) -> ParsedRequest:
    """Turn a request body + lower-cased headers into inputs; raise BadEventError if unrecognised.

    Direct requests and uploads are limited to ``max_images`` (413); storage events are not (the
    service processes them in chunks: refusing would drop the objects).
    """
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
    if len(out.inputs) > max_images and not out.from_event:
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
            out.ignored.append(Ignored("sns_" + _snake(kind), detail=storage_events.opt_str(payload.get("TopicArn"))))
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
            storage_events.s3_record(record, out)
        return
    if payload.get("Event") == "s3:TestEvent":
        out.from_event = True
        out.ignored.append(Ignored("test_event", event_type="s3:TestEvent"))
        return
    if "cloudEventsVersion" in payload or str(payload.get("eventType", "")).startswith(OCI_PREFIX):
        out.from_event = True
        storage_events.oci_event(payload, out)
        return
    ce = envelopes.structured_cloudevent(payload)
    if ce is not None:
        out.from_event = True
        _cloudevent(ce, out, depth)
        return
    if "EventName" in payload or "EventType" in payload:
        out.from_event = True
        storage_events.minio_top_level(payload, out)
        return
    if "event_type" in payload and str(payload.get("key", "")).startswith("/buckets/"):
        out.from_event = True
        storage_events.seaweedfs_filer(payload, out)
        return
    _request(payload, out, default_bucket)


def _request(payload: dict[str, Any], out: ParsedRequest, default_bucket: str) -> None:
    """`{"bucket","key"}`, `{"url"}`, `{"urls": [...]}`, Classy `{"name": url}`."""
    if "key" in payload:
        bucket = payload.get("bucket") or default_bucket
        key = payload.get("key")
        if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
            raise BadEventError("`bucket` and `key` must be non-empty strings")
        etag = storage_events.text(payload, "etag", "request") or ""
        out.inputs.append(ObjectRef(bucket=bucket, key=key, etag=etag))
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


def _cloudevent(ce: envelopes.CloudEvent, out: ParsedRequest, depth: int) -> None:
    """CloudEvents 1.0: OCI object types by type, anything else by what its data contains."""
    if ce.type.startswith(OCI_PREFIX):
        if ce.type not in OCI_CREATE_TYPES:
            out.ignored.append(Ignored("not_a_create_event", event_type=ce.type))
            return
        ref = storage_events.oci_data(ce.data, ce.type)
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


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
