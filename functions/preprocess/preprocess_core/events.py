"""Every door into preprocess → a list of inputs (objects, URLs, uploads) plus acknowledged no-ops.

Parsing is two tables of recognisers, one recogniser per format. A recogniser takes
``(payload, ctx)`` and returns what the payload asks for, a list of ``Input`` and ``Ignored`` items
(``Found``), or ``None`` when the payload is not its format; the first one that answers wins, and
nothing fills in an argument. Envelopes unwrap and hand what they hold back to the dispatcher
(``parse_payload``) one level deeper, and return what it returns.

``BODY_FORMATS``, tried on the raw body in this order:

1. ``cloudevents_binary`` — a ``ce-specversion`` header; the body is the data (JSON → any JSON format
   below, ``image/*`` → an upload named by ``ce-subject``);
2. ``multipart`` — ``multipart/form-data``, fields ``image`` / ``images`` / ``image[]``;
3. ``upload`` — ``image/*``, ``application/octet-stream`` or an image signature.

Any other body is JSON (an empty one is 400) and goes to ``parse_payload``: a JSON list is a batch,
each element dispatched on its own; an object goes to ``JSON_FORMATS``, in this order:

1. ``sns`` — SNS HTTP(S) delivery (``Type`` + ``Message``): the message is parsed again;
   subscription and unsubscribe confirmations are acknowledged;
2. ``sqs_lambda`` — SQS messages delivered Lambda-style (``Records[].body``);
3. ``sqs_receive_message`` — an SQS ReceiveMessage answer (``Messages[].Body``);
4. ``sns_lambda`` — SNS delivered Lambda-style (``Records[].Sns.Message``);
5. ``s3_records`` — S3 notification ``Records`` (AWS, MinIO, Ceph, moto);
6. ``s3_test_event`` — ``{"Event": "s3:TestEvent"}``, acknowledged;
7. ``oci_event`` — OCI Events (CloudEvents 0.1: ``cloudEventsVersion`` or an OCI ``eventType``);
8. ``cloudevents_structured`` — CloudEvents 1.0 structured mode (``specversion`` + ``type``);
9. ``minio_top_level`` — MinIO webhook without ``Records`` (``EventName``/``EventType`` + ``Key``);
10. ``seaweedfs_filer`` — SeaweedFS filer webhook (``event_type`` + ``key: /buckets/…``);
11. ``request`` — ``{"bucket","key"[,"etag"]}``, ``{"key"}`` (``INPUT_BUCKET``), ``{"url"}``,
    ``{"urls": [...]}``, Classy ``{"name": "<url>"}``.

The order matters where shapes overlap: SQS and SNS-to-Lambda deliveries hold ``Records`` too, so
they come before ``s3_records``; a MinIO webhook carries ``Records`` and a top-level ``EventName``,
and ``Records`` wins. An object no recogniser claims is 400 ``unrecognised request``.

A call is ``from_event`` when its format is an event format (every one but ``multipart``, ``upload``
and ``request``), or, for a JSON list, when any element's is: events are answered per item and are not
limited to ``MAX_IMAGES``. Envelopes and lists nest at most 5 deep. Storage notifications are parsed
by ``storage_events`` (where keys are decoded per source), envelopes are unwrapped by ``envelopes``,
and the input types live in ``inputs`` (re-exported here). Malformed bodies — invalid or too deeply
nested JSON, wrong JSON types at any level — are a ``BadEventError`` (400 ``bad_event``), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from fnvision_common.objects import ObjectRef

from . import envelopes, multipart, storage_events
from .errors import BadEventError, TooManyImagesError
from .inputs import Context, Found, Ignored, Input, ParsedRequest, Upload, UrlRef
from .storage_events import OCI_CREATE_TYPES, OCI_PREFIX

__all__ = [
    "BODY_FORMATS",
    "JSON_FORMATS",
    "OCI_CREATE_TYPES",
    "OCI_PREFIX",
    "Format",
    "Ignored",
    "Input",
    "ObjectRef",
    "ParsedRequest",
    "Upload",
    "UrlRef",
    "looks_like_image",
    "parse_payload",
    "parse_request",
]
_MAX_DEPTH = 5
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")

Recogniser = Callable[[Any, Context], Found | None]
"""``(payload, ctx) -> Found | None``: ``None`` means "not my format"."""


@dataclass(frozen=True)
class Format:
    """One row of a recogniser table."""

    name: str
    recognise: Recogniser
    event: bool
    """A storage-event door: the call is answered per item and not limited to ``MAX_IMAGES``."""


class Parsed(NamedTuple):
    """What the dispatcher found, and whether it came through an event format."""

    found: Found
    from_event: bool


def parse_request(
    body: bytes, headers: Mapping[str, str], *, max_images: int = 32, default_bucket: str = ""
) -> ParsedRequest:
    """Turn a request body + lower-cased headers into inputs; raise BadEventError if unrecognised.

    Direct requests and uploads are limited to ``max_images`` (413); storage events are not (the
    service processes them in chunks: refusing would drop the objects).
    """
    ctx = Context(headers=headers, default_bucket=default_bucket, max_images=max_images)
    parsed = _first(BODY_FORMATS, body, ctx) or _json_body(body, ctx)
    inputs = [item for item in parsed.found if not isinstance(item, Ignored)]
    ignored = [item for item in parsed.found if isinstance(item, Ignored)]
    if not inputs and not ignored:
        raise BadEventError("the request names no image")
    inputs = _dedupe(inputs)
    if len(inputs) > max_images and not parsed.from_event:
        raise TooManyImagesError(f"{len(inputs)} images in one call; the limit is {max_images} (MAX_IMAGES)")
    return ParsedRequest(inputs=inputs, ignored=ignored, from_event=parsed.from_event)


def parse_payload(payload: Any, ctx: Context) -> Parsed:
    """Dispatch one JSON value: a list element by element, an object to the first format that claims it."""
    if ctx.depth > _MAX_DEPTH:
        raise BadEventError("envelopes nested too deeply")
    if isinstance(payload, list):
        parts = [parse_payload(item, ctx.element()) for item in payload]
        return Parsed([item for part in parts for item in part.found], any(part.from_event for part in parts))
    if not isinstance(payload, dict):
        raise BadEventError(f"expected a JSON object, got {type(payload).__name__}")
    parsed = _first(JSON_FORMATS, payload, ctx)
    if parsed is None:
        keys = ", ".join(sorted(str(k) for k in payload)[:8])
        raise BadEventError(f"unrecognised request (keys: {keys or 'none'})")
    return parsed


def looks_like_image(body: bytes) -> bool:
    """Sniff common image signatures (JSON never starts with these)."""
    return body.startswith(_IMAGE_MAGIC) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def _first(formats: tuple[Format, ...], payload: Any, ctx: Context) -> Parsed | None:
    for fmt in formats:
        found = fmt.recognise(payload, ctx)
        if found is not None:
            return Parsed(found, fmt.event)
    return None


def _json_body(body: bytes, ctx: Context) -> Parsed:
    if not body.strip():
        raise BadEventError("empty request body: send an event, {bucket,key}, {url} or an image")
    return parse_payload(envelopes.loads_json(body, "request body"), ctx)


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


# --- raw-body formats ---------------------------------------------------------------------------


def _content_type(ctx: Context) -> tuple[str, str]:
    """The Content-Type header, and its lower-cased media type without parameters."""
    content_type = ctx.headers.get("content-type", "")
    return content_type, content_type.split(";")[0].strip().lower()


def _cloudevents_binary(body: bytes, ctx: Context) -> Found | None:
    ce = envelopes.binary_cloudevent(ctx.headers, body)
    return None if ce is None else _cloudevent(ce, ctx)


def _multipart(body: bytes, ctx: Context) -> Found | None:
    content_type, base = _content_type(ctx)
    if base != "multipart/form-data":
        return None
    parts = multipart.image_parts(body, content_type, max_parts=ctx.max_images + 16)
    return [Upload(p.filename or f"{p.name}[{i}]", p.data, p.content_type) for i, p in enumerate(parts)]


def _upload(body: bytes, ctx: Context) -> Found | None:
    base = _content_type(ctx)[1]
    if not (base.startswith("image/") or base == "application/octet-stream" or looks_like_image(body)):
        return None
    name = ctx.headers.get("x-filename") or ctx.headers.get("fn-http-h-x-filename") or "upload"
    return [Upload(name, body, base or None)]


# --- JSON envelopes: unwrap, dispatch what is inside, return what it found ----------------------


def _sns(payload: dict[str, Any], ctx: Context) -> Found | None:
    sns = envelopes.sns_message(payload)
    if sns is None:
        return None
    kind, message = sns
    if message is None:
        return [Ignored("sns_" + _snake(kind), detail=storage_events.opt_str(payload.get("TopicArn")))]
    return parse_payload(message, ctx.inner()).found


def _sqs_lambda(payload: dict[str, Any], ctx: Context) -> Found | None:
    return _each(envelopes.sqs_lambda_bodies(payload), ctx)


def _sqs_receive_message(payload: dict[str, Any], ctx: Context) -> Found | None:
    return _each(envelopes.sqs_received_bodies(payload), ctx)


def _sns_lambda(payload: dict[str, Any], ctx: Context) -> Found | None:
    return _each(envelopes.lambda_sns_messages(payload), ctx)


def _each(messages: list[Any] | None, ctx: Context) -> Found | None:
    """What each message of an envelope holds, in order (None: not that envelope)."""
    if messages is None:
        return None
    return [item for message in messages for item in parse_payload(message, ctx.inner()).found]


def _cloudevents_structured(payload: dict[str, Any], ctx: Context) -> Found | None:
    ce = envelopes.structured_cloudevent(payload)
    return None if ce is None else _cloudevent(ce, ctx)


def _cloudevent(ce: envelopes.CloudEvent, ctx: Context) -> Found:
    """CloudEvents 1.0: OCI object types by type, anything else by what its data contains."""
    if ce.type.startswith(OCI_PREFIX):
        if ce.type not in OCI_CREATE_TYPES:
            return [Ignored("not_a_create_event", event_type=ce.type)]
        ref = storage_events.oci_data(ce.data, ce.type)
        return [replace(ref, event_id=ce.id, event_time=ce.time, origin="cloudevent")]
    if isinstance(ce.data, bytes):
        return [Upload(ce.subject or ce.id or "upload", ce.data, ce.datacontenttype)]
    if ce.data is None:
        raise BadEventError(f"CloudEvent {ce.type!r} without data")
    return [_stamped(item, ce) for item in parse_payload(ce.data, ctx.inner()).found]


def _stamped(item: Input | Ignored, ce: envelopes.CloudEvent) -> Input | Ignored:
    """An object found in a CloudEvent's data, with the event's id, time and type where it had none."""
    if not isinstance(item, ObjectRef):
        return item
    return replace(
        item,
        event_id=item.event_id or ce.id,
        event_time=item.event_time or ce.time,
        event_type=item.event_type or ce.type,
        origin=item.origin if item.origin != "request" else "cloudevent",
    )


# --- direct requests ----------------------------------------------------------------------------


def _request(payload: dict[str, Any], ctx: Context) -> Found | None:
    """`{"bucket","key"}`, `{"url"}`, `{"urls": [...]}`, Classy `{"name": url}`."""
    if "key" in payload:
        bucket = payload.get("bucket") or ctx.default_bucket
        key = payload.get("key")
        if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
            raise BadEventError("`bucket` and `key` must be non-empty strings")
        etag = storage_events.text(payload, "etag", "request") or ""
        return [ObjectRef(bucket=bucket, key=key, etag=etag)]
    if "url" in payload or "urls" in payload:
        urls = payload.get("urls") if "urls" in payload else [payload.get("url")]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
            raise BadEventError("`url` must be a non-empty string (`urls` a list of them)")
        return [UrlRef(u) for u in urls]
    name = payload.get("name")
    if isinstance(name, str) and name.lower().startswith(("http://", "https://")):
        return [UrlRef(name)]
    return None


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


BODY_FORMATS: tuple[Format, ...] = (
    Format("cloudevents_binary", _cloudevents_binary, event=True),
    Format("multipart", _multipart, event=False),
    Format("upload", _upload, event=False),
)
"""Tried in this order on the raw body; a body none of them claims is JSON."""

JSON_FORMATS: tuple[Format, ...] = (
    Format("sns", _sns, event=True),
    Format("sqs_lambda", _sqs_lambda, event=True),
    Format("sqs_receive_message", _sqs_receive_message, event=True),
    Format("sns_lambda", _sns_lambda, event=True),
    Format("s3_records", storage_events.s3_records, event=True),
    Format("s3_test_event", storage_events.s3_test_event, event=True),
    Format("oci_event", storage_events.oci_event, event=True),
    Format("cloudevents_structured", _cloudevents_structured, event=True),
    Format("minio_top_level", storage_events.minio_top_level, event=True),
    Format("seaweedfs_filer", storage_events.seaweedfs_filer, event=True),
    Format("request", _request, event=False),
)
"""Tried in this order on each JSON object (the order is explained in the module docstring)."""
