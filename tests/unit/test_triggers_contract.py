"""Every body the triggers send parses, in preprocess's own parser, to the object they meant."""

from __future__ import annotations

import json

import pytest
from fnvision_common.objects import ObjectRef
from preprocess_core import events

from triggers.events import OCI_UPDATE, oci_object_event, s3_records, to_body

REFS = [ObjectRef("images", k, f"etag{i}", 10 + i) for i, k in enumerate(
    ["cat.jpg", "in/with space.jpg", "a+b/c+d.jpg", "été/日本 photo.jpg", "100%/x.jpg"])]
HEADERS = {"content-type": "application/json"}


def _parsed(body: bytes) -> list[tuple[str, str, str]]:
    request = events.parse_request(body, HEADERS)
    assert request.from_event and not request.ignored
    return [(r.bucket, r.key, r.etag) for r in request.inputs]


def _want(refs: list[ObjectRef]) -> list[tuple[str, str, str]]:
    return [(r.bucket, r.key, r.etag) for r in refs]


@pytest.mark.parametrize("ref", REFS, ids=lambda r: r.key)
def test_oci_createobject_and_updateobject(ref: ObjectRef) -> None:
    assert _parsed(to_body(oci_object_event(ref))) == _want([ref])
    assert _parsed(to_body(oci_object_event(ref, event_type=OCI_UPDATE))) == _want([ref])


def test_s3_records_batch_is_one_call() -> None:
    assert _parsed(to_body(s3_records(REFS))) == _want(REFS)


def test_sns_envelope_forwarded_unchanged() -> None:
    envelope = {"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                "Message": json.dumps(s3_records(REFS[:2])), "Timestamp": "2026-01-01T00:00:00.000Z"}
    assert _parsed(json.dumps(envelope).encode()) == _want(REFS[:2])


def test_sns_subscription_confirmation_is_only_acknowledged() -> None:
    # triggers/aws/README.md relies on this: preprocess neither confirms nor keeps the token
    confirmation = {"Type": "SubscriptionConfirmation", "MessageId": "m0", "Token": "secret-token-123",
                    "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "You have chosen to subscribe ...",
                    "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
                    "Timestamp": "2026-01-01T00:00:00.000Z"}
    request = events.parse_request(json.dumps(confirmation).encode(), {"content-type": "text/plain"})
    assert request.inputs == []
    assert [(i.reason, i.detail) for i in request.ignored] == [("sns_subscription_confirmation",
                                                               "arn:aws:sns:us-east-1:1:t")]
    assert "secret-token-123" not in repr(request)
