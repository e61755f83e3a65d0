"""Build the event bodies the sources send to preprocess (shapes: fn-contract.md §4).

* OCI Events `createobject` / `updateobject`: CloudEvents **0.1** envelope, object name plain (not
  URL-encoded), bucket in `data.additionalDetails.bucketName`. One object per event.
* S3 notification `Records` (AWS style): `s3.object.key` form-encoded (`quote_plus`, `/` kept, so
  a space becomes `+` and a literal `+` becomes `%2B`), `eventName` without the `s3:` prefix. Several
  records in one body are one batch for preprocess.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from fnvision_common.objects import ObjectRef

OCI_CREATE = "com.oraclecloud.objectstorage.createobject"
OCI_UPDATE = "com.oraclecloud.objectstorage.updateobject"
S3_PUT = "ObjectCreated:Put"
DEFAULT_NAMESPACE = "fnvision"
"""Stands in for the OCI tenancy namespace in locally produced events."""
JSON = "application/json"


def rfc3339(moment: datetime | None = None) -> str:
    """UTC time with milliseconds and a `Z`, as OCI and AWS write it."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def oci_object_event(
    ref: ObjectRef,
    *,
    event_type: str = OCI_CREATE,
    namespace: str = DEFAULT_NAMESPACE,
    event_time: datetime | None = None,
    event_id: str | None = None,
    compartment_id: str = "ocid1.compartment.oc1..fnvisionlocal",
    compartment_name: str = "fn-vision",
) -> dict[str, Any]:
    """An OCI Events object event (CloudEvents 0.1, eventTypeVersion 2.0) for `ref`."""
    return {
        "eventType": event_type,
        "cloudEventsVersion": "0.1",
        "eventTypeVersion": "2.0",
        "source": "ObjectStorage",
        "eventTime": rfc3339(event_time),
        "contentType": JSON,
        "data": {
            "compartmentId": compartment_id,
            "compartmentName": compartment_name,
            "resourceName": ref.key,
            "resourceId": f"/n/{namespace}/b/{ref.bucket}/o/{ref.key}",
            "availabilityDomain": "AD-1",
            "additionalDetails": {
                "bucketName": ref.bucket,
                "namespace": namespace,
                "eTag": ref.etag,
                "archivalState": "Available",
            },
        },
        "eventID": event_id or str(uuid.uuid4()),
        "extensions": {"compartmentId": compartment_id},
    }


def encode_s3_key(key: str) -> str:
    """Form-encode an object key as AWS does in notifications (`/` kept)."""
    return quote_plus(key, safe="/")


def s3_record(
    ref: ObjectRef,
    *,
    event_name: str = S3_PUT,
    region: str = "us-east-1",
    event_time: datetime | None = None,
    source: str = "aws:s3",
) -> dict[str, Any]:
    """One AWS S3 notification record (eventVersion 2.1) for `ref`."""
    obj: dict[str, Any] = {"key": encode_s3_key(ref.key), "eTag": ref.etag,
                           "sequencer": uuid.uuid4().hex[:16]}
    if ref.size is not None:
        obj["size"] = ref.size
    return {
        "eventVersion": "2.1",
        "eventSource": source,
        "awsRegion": region,
        "eventTime": rfc3339(event_time),
        "eventName": event_name,
        "userIdentity": {"principalId": "fn-vision"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper()},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "fn-vision",
            "bucket": {"name": ref.bucket, "ownerIdentity": {"principalId": "fn-vision"},
                       "arn": f"arn:aws:s3:::{ref.bucket}"},
            "object": obj,
        },
    }


def s3_records(refs: Iterable[ObjectRef], **kwargs: Any) -> dict[str, Any]:
    """A `{"Records": [...]}` notification carrying every ref (one preprocess batch)."""
    return {"Records": [s3_record(ref, **kwargs) for ref in refs]}


def to_body(event: Mapping[str, Any]) -> bytes:
    """Serialise an event as compact UTF-8 JSON (non-ASCII keys kept readable)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
