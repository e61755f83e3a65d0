"""Every input door of preprocess, with the recorded real samples and key-encoding variants."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from preprocess_core.errors import BadEventError, TooManyImagesError
from preprocess_core.events import ObjectRef, Upload, UrlRef, parse_request

EVENTS = Path(__file__).resolve().parents[1] / "data" / "events"
JSON = {"content-type": "application/json"}
# Raw object names that exercise every decoding rule.
KEYS = ["in/cat.jpg", "my photo.jpg", "a+b.jpg", "ünï/çødé 猫.png", "deep/er/path/x y+z.jpeg", "100%.jpg"]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def parse(payload: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_request(body, headers if headers is not None else JSON, **kw)


def s3_event(key: str, *, source: str = "aws:s3", name: str = "ObjectCreated:Put", escape_slash: bool = False):
    event = load("s3-put.json")
    record = event["Records"][0]
    record["eventSource"] = source
    record["eventName"] = name
    record["s3"]["bucket"]["name"] = "images"
    # AWS: form encoding, '/' kept; MinIO/moto: QueryEscape, '/' -> %2F.
    record["s3"]["object"]["key"] = quote_plus(key, safe="" if escape_slash else "/")
    record["s3"]["object"].pop("urlDecodedKey", None)
    return event


# --- recorded samples -------------------------------------------------------------------------


def test_aws_sample() -> None:
    req = parse(load("s3-put.json"))
    assert req.from_event
    (ref,) = req.inputs
    assert ref == ObjectRef(
        bucket="sourcebucket",
        key="HappyFace.jpg",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=1024,
        event_id="C3D13FE58DE4C810",
        event_time="1970-01-01T00:00:00.123Z",
        event_type="ObjectCreated:Put",
        origin="aws",
    )


def test_minio_sample() -> None:
    req = parse(load("minio-put.json"))
    (ref,) = req.inputs
    assert (ref.bucket, ref.key, ref.etag, ref.size) == (
        "ai-demo",
        "service.yaml",
        "702314f405adeaa9aa042985692cd49e",
        576,
    )
    assert ref.content_type == "text/yaml" and ref.origin == "minio" and ref.event_type == "s3:ObjectCreated:Put"


def test_oci_sample() -> None:
    req = parse(load("oci-createobject.json"))
    (ref,) = req.inputs
    assert (ref.bucket, ref.key) == ("bucket-gigis-pizza-discounts", "campaigns.json")
    assert ref.etag == "199f8dbf-0b8c-41b6-9596-4d2a6792d7e5"
    assert ref.event_id == "3e47d127-19de-6eb8-eb67-0c1ab961fcbc"
    assert ref.event_time == "2020-01-21T16:26:30.849Z"
    assert ref.event_type == "com.oraclecloud.objectstorage.createobject" and ref.origin == "oci"


# --- key decoding per source ------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_aws_keys_are_form_decoded(key: str) -> None:
    assert parse(s3_event(key)).inputs[0].key == key


@pytest.mark.parametrize("key", KEYS)
def test_minio_and_moto_keys_with_escaped_slash(key: str) -> None:
    event = s3_event(key, source="minio:s3", name="s3:ObjectCreated:Put", escape_slash=True)
    if "/" in key:
        assert "%2F" in event["Records"][0]["s3"]["object"]["key"]
    assert parse(event).inputs[0].key == key


@pytest.mark.parametrize("key", KEYS)
def test_oci_keys_are_raw(key: str) -> None:
    event = load("oci-createobject.json")
    event["data"]["resourceName"] = key
    assert parse(event).inputs[0].key == key


@pytest.mark.parametrize("key", KEYS)
def test_direct_request_keys_are_raw(key: str) -> None:
    (ref,) = parse({"bucket": "images", "key": key}).inputs
    assert ref == ObjectRef(bucket="images", key=key)


def test_minio_top_level_key_without_records_is_raw() -> None:
    req = parse({"EventName": "s3:ObjectCreated:Put", "Key": "images/in/a+b c.jpg"})
    assert req.inputs == [
        ObjectRef(bucket="images", key="in/a+b c.jpg", event_type="s3:ObjectCreated:Put", origin="minio")
    ]


def test_old_minio_event_type_field() -> None:
    assert parse({"EventType": "s3:ObjectCreated:Put", "Key": "images/x.jpg"}).inputs[0].key == "x.jpg"
    req = parse({"EventType": "s3:ObjectRemoved:Delete", "Key": "images/x.jpg"})
    assert req.inputs == [] and req.ignored[0].reason == "not_a_create_event"


# --- acknowledged no-ops ----------------------------------------------------------------------


def test_s3_test_event_is_acknowledged() -> None:
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T00:00:00Z", "Bucket": "images"}
    req = parse(event)
    assert req.inputs == [] and req.ignored[0].reason == "test_event" and req.from_event


@pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:Post"])
def test_non_create_s3_events_are_ignored(name: str) -> None:
    req = parse(s3_event("a.jpg", name=name))
    assert req.inputs == [] and req.ignored[0].event_type == name


@pytest.mark.parametrize("kind", ["deleteobject", "createbucket"])
def test_other_oci_events_are_ignored(kind: str) -> None:
    event = load("oci-createobject.json")
    event["eventType"] = "com.oraclecloud.objectstorage." + kind
    req = parse(event)
    assert req.inputs == [] and req.ignored[0].reason == "not_a_create_event"


def test_oci_updateobject_and_tolerant_fields() -> None:
    event = load("oci-createobject.json")
    event["eventType"] = "com.oraclecloud.objectstorage.updateobject"
    del event["extensions"], event["eventTypeVersion"], event["data"]["resourceId"]
    event["data"]["freeFormTags"] = {}
    assert parse(event).inputs[0].key == "campaigns.json"


def test_oci_bucket_from_resource_id_when_details_missing() -> None:
    event = load("oci-createobject.json")
    del event["data"]["additionalDetails"]
    ref = parse(event).inputs[0]
    assert (ref.bucket, ref.key, ref.etag) == ("bucket-gigis-pizza-discounts", "campaigns.json", "")


# --- envelopes --------------------------------------------------------------------------------


def sns(message: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Message": json.dumps(message),
        "Timestamp": "2024-01-01T00:00:00.000Z",
    }


def test_sns_wrapped_records_as_text_plain() -> None:
    key = "in/my cat+1.jpg"
    body = json.dumps(sns(s3_event(key, escape_slash=True))).encode()
    req = parse_request(body, {"content-type": "text/plain; charset=UTF-8"})
    assert req.inputs[0].key == key and req.from_event


def test_sns_wrapped_test_event_and_subscription() -> None:
    assert parse(sns({"Event": "s3:TestEvent"})).ignored[0].reason == "test_event"
    confirm = {"Type": "SubscriptionConfirmation", "Message": "You have chosen...", "SubscribeURL": "https://x"}
    assert parse(confirm).ignored[0].reason == "sns_subscription_confirmation"


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


def test_sqs_receive_message_form() -> None:
    event = {"Messages": [{"MessageId": "1", "ReceiptHandle": "r", "Body": json.dumps(s3_event("a b.jpg"))}]}
    assert parse(event).inputs[0].key == "a b.jpg"


def test_several_records_in_one_event_and_duplicates_dropped() -> None:
    event = s3_event("a.jpg")
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "b.jpg"
    event["Records"] += [second, copy.deepcopy(second)]
    assert [r.key for r in parse(event).inputs] == ["a.jpg", "b.jpg"]


def test_cloudevents_structured_oci() -> None:
    oci = load("oci-createobject.json")
    ce = {
        "specversion": "1.0",
        "type": oci["eventType"],
        "id": "ce-1",
        "source": "/os",
        "time": "2024-01-01T00:00:00Z",
        "data": oci["data"],
    }
    ref = parse(ce, {"content-type": "application/cloudevents+json"}).inputs[0]
    assert (ref.bucket, ref.key, ref.event_id, ref.origin) == (
        "bucket-gigis-pizza-discounts",
        "campaigns.json",
        "ce-1",
        "cloudevent",
    )


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
    oci = load("oci-createobject.json")
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


def test_seaweedfs_filer_webhook() -> None:
    event = {
        "event_type": "create",
        "key": "/buckets/images/in/a+b c.jpg",
        "message": {"new_entry": {"attributes": {"file_size": 10, "mime": "image/jpeg"}}},
    }
    ref = parse(event).inputs[0]
    assert (ref.bucket, ref.key, ref.size, ref.origin) == ("images", "in/a+b c.jpg", 10, "seaweedfs")
    internal = {"event_type": "create", "key": "/buckets/images/.uploads/x/0001.part", "message": {}}
    assert parse(internal).ignored[0].reason == "internal_path"


# --- direct requests --------------------------------------------------------------------------


def test_url_and_classy_and_lists() -> None:
    assert parse({"url": "https://example.com/cat.jpg"}).inputs == [UrlRef("https://example.com/cat.jpg")]
    assert parse({"name": "http://example.com/c.png"}).inputs == [UrlRef("http://example.com/c.png")]
    req = parse([{"bucket": "b", "key": "k1"}, {"url": "https://x/y.jpg"}])
    assert req.inputs == [ObjectRef("b", "k1"), UrlRef("https://x/y.jpg")] and not req.from_event


def test_key_without_bucket_uses_input_bucket() -> None:
    assert parse({"key": "k.jpg"}, default_bucket="images").inputs == [ObjectRef("images", "k.jpg")]
    with pytest.raises(BadEventError):
        parse({"key": "k.jpg"})


def test_raw_image_body_and_octet_stream() -> None:
    req = parse_request(b"\x89PNG\r\n\x1a\nrest", {"content-type": "image/png", "x-filename": "a.png"})
    assert req.inputs == [Upload("a.png", b"\x89PNG\r\n\x1a\nrest", "image/png")]
    assert isinstance(parse_request(b"\xff\xd8\xff", {}).inputs[0], Upload)  # sniffed, no content type


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not json",
        b"[1,2]",
        b'{"hello": "world"}',
        b'{"bucket": "b", "key": ""}',
        b'{"name": "Tubbs"}',
        b'{"url": 5}',
    ],
)
def test_bad_requests(body: bytes) -> None:
    with pytest.raises(BadEventError):
        parse_request(body, JSON)


def test_too_many_images() -> None:
    with pytest.raises(TooManyImagesError):
        parse([{"bucket": "b", "key": f"k{i}"} for i in range(5)], max_images=4)


def test_quote_and_quote_plus_agree_on_decoding() -> None:
    # A client that used %20 instead of + (quote) must decode the same way.
    event = s3_event("a b.jpg")
    event["Records"][0]["s3"]["object"]["key"] = quote("in/a b.jpg")
    assert parse(event).inputs[0].key == "in/a b.jpg"
