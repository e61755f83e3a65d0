"""Envelopes (preprocess_core.envelopes, and the recognisers in events that unwrap them): SNS over HTTP
and to Lambda, SQS Lambda-style and ReceiveMessage, CloudEvents 1.0 structured and binary — on their
recorded samples, nested in each other, and every malformed shape."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from preprocess_core.events import ObjectRef, Upload, parse_request
from preprocess_core.inputs import Ignored

from tests.data.event_samples import (
    Expect,
    assert_bad_event,
    check_sample,
    check_samples,
    load,
    load_json,
    parse,
    s3_event,
    sns,
)

FORMATS = {"sns", "sqs_lambda", "sqs_receive_message", "sns_lambda", "cloudevents_structured", "cloudevents_binary"}


def moto(bucket: str, key: str, event_time: str) -> ObjectRef:
    """What moto's S3 sent for an upload of the same 64 bytes (keys arrive `quote_plus`-encoded, `/` too)."""
    return ObjectRef(bucket, key, "443d7348fd4e746fb3034d92ec4b543a", 64, event_time=event_time,
                     event_type="ObjectCreated:Put", origin="aws")


MOTO_IMAGES = moto("images", "in/my cat+1.jpg", "2026-12-01T08:26:07.885Z")  # via SNS
MOTO_PHOTOS = moto("photos", "2024/beach day.jpg", "2026-12-01T08:26:08.965Z")  # via SQS
TEST_EVENT = Ignored("test_event", event_type="s3:TestEvent")
# The same objects as the bare notifications name (their exact values: test_preprocess_storage_events.py).
OCI = load("oci-createobject.json").parse().inputs
CEPH = load("ceph-put.json").parse().inputs

SAMPLES = {
    "moto-sns-notification.http": Expect("sns", [MOTO_IMAGES]),
    "moto-sns-test-event.http": Expect("sns", [TEST_EVENT]),
    "sns-subscription-confirmation.http": Expect(
        "sns", [Ignored("sns_subscription_confirmation", detail="arn:aws:sns:us-west-2:123456789012:MyTopic")]
    ),
    "moto-sqs-receive-message.json": Expect("sqs_receive_message", [TEST_EVENT, MOTO_PHOTOS]),
    "sqs-lambda.json": Expect("sqs_lambda", [MOTO_PHOTOS]),
    "sns-lambda.json": Expect("sns_lambda", [MOTO_IMAGES]),
    # an OCI type: the object of the OCI event, with the CloudEvent's own id
    "cloudevents-structured-oci.http": Expect(
        "cloudevents_structured",
        [replace(OCI[0], event_id="f1c0e7a2-5b8d-4c3e-9a61-2d7f0b9e4c15", origin="cloudevent")],
    ),
    # any other type: its data is parsed as any door (here Ceph's S3 Records), which names the object
    "ceph-cloudevents-binary.http": Expect("cloudevents_binary", CEPH),
}


def test_every_envelope_sample_has_a_row() -> None:
    check_samples(SAMPLES, FORMATS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(name: str) -> None:
    check_sample(name, SAMPLES[name])


# --- envelopes inside envelopes -------------------------------------------------------------------


def test_sqs_records_with_sns_inside() -> None:
    bodies = [json.dumps(sns(s3_event(f"k{i}.jpg"))) for i in range(3)]
    event = {
        "Records": [
            {"messageId": str(i), "receiptHandle": "r", "body": b, "eventSource": "aws:sqs"}
            for i, b in enumerate(bodies)
        ]
    }
    req = parse(event)
    assert [r.key for r in req.inputs] == ["k0.jpg", "k1.jpg", "k2.jpg"]


def test_cloudevents_structured_with_s3_records_in_base64() -> None:
    data = base64.b64encode(json.dumps(s3_event("x+y.jpg")).encode()).decode()
    ce = {
        "specversion": "1.0",
        "type": "com.amazonaws.s3.notification",
        "id": "e1",
        "source": "s3",
        "data_base64": data,
        "datacontenttype": "application/json",
    }
    assert parse(ce).inputs[0].key == "x+y.jpg"


def test_cloudevents_binary_headers() -> None:
    oci = load_json("oci-createobject.json")
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "com.oraclecloud.objectstorage.createobject",
        "ce-id": "bin-1",
        "ce-source": "/os",
        "ce-time": "2024-02-02T00:00:00Z",
    }
    req = parse_request(json.dumps(oci["data"]).encode(), headers)
    assert req.from_event and req.inputs[0].event_id == "bin-1" and req.inputs[0].event_time == "2024-02-02T00:00:00Z"


def test_cloudevents_binary_delete_is_ignored_and_image_data_is_an_upload() -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "com.oraclecloud.objectstorage.deleteobject", "ce-id": "x"}
    assert parse_request(b"{}", {**headers, "content-type": "application/json"}).ignored
    img = {
        "ce-specversion": "1.0",
        "ce-type": "my.upload",
        "ce-id": "i1",
        "ce-subject": "cat.jpg",
        "content-type": "image/jpeg",
    }
    req = parse_request(b"\xff\xd8\xff\xe0 fake", img)
    assert req.inputs == [Upload("cat.jpg", b"\xff\xd8\xff\xe0 fake", "image/jpeg")]


# --- malformed envelopes: always 400 bad_event, never a crash -------------------------------------

MALFORMED: dict[str, Any] = {
    # SNS / SQS envelopes
    "lambda_sns_not_object": {"Records": [{"Sns": "x"}]},
    "lambda_sns_message_number": {"Records": [{"Sns": {"Message": 5}}]},
    "sns_message_number": {"Type": "Notification", "Message": 5},
    "sns_message_bad_json": {"Type": "Notification", "Message": "{"},
    "sns_type_list": {"Type": [], "Message": "x"},
    "sqs_body_number": {"Records": [{"eventSource": "aws:sqs", "body": 5}]},
    "sqs_body_bad_json": {"Records": [{"eventSource": "aws:sqs", "body": "{nope"}]},
    "sqs_messages_body_list": {"Messages": [{"Body": []}]},
    # CloudEvents 1.0 structured
    "ce_type_object": {"specversion": "1.0", "type": {}, "data": {}},
    "ce_id_list": {"specversion": "1.0", "type": "x", "id": [1], "data": {"url": "http://example.com/x.jpg"}},
    "ce_data_number": {"specversion": "1.0", "type": "x", "data": 5},
    "ce_data_base64_list": {"specversion": "1.0", "type": "x", "data_base64": [1]},
    "ce_oci_data_string": {"specversion": "1.0", "type": "com.oraclecloud.objectstorage.createobject", "data": "x"},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_envelopes_are_bad_events(case: str) -> None:
    assert_bad_event(MALFORMED[case])
