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


def test_events_over_max_images_are_not_refused() -> None:
    # The service processes them in chunks; refusing (413 → 200 on /invoke) would drop the objects.
    event = s3_event("a.jpg")
    event["Records"] = [copy.deepcopy(event["Records"][0]) for _ in range(5)]
    for i, record in enumerate(event["Records"]):
        record["s3"]["object"]["key"] = f"k{i}.jpg"
    req = parse(event, max_images=4)
    assert req.from_event and len(req.inputs) == 5


# --- malformed bodies: always 400 bad_event, never a crash ------------------------------------

OCI_CE01 = {"cloudEventsVersion": "0.1", "eventType": "com.oraclecloud.objectstorage.createobject"}
S3_CREATE = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}
FILER = {"event_type": "create", "key": "/buckets/b/k.jpg"}
DEEP = 100_000
MALFORMED: dict[str, Any] = {
    "top_level_string": "x",
    "top_level_number": 1,
    "top_level_null": None,
    "top_level_bool": True,
    "list_of_numbers": [1, 2],
    "nested_lists_over_depth": [[[[[[[{"url": "http://example.com/x.jpg"}]]]]]]],
    "deep_json_lists": b"[" * DEEP + b"]" * DEEP,
    "deep_json_objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "too_many_digits": b'{"bucket": "b", "key": "k", "etag": ' + b"9" * 5000 + b"}",
    "invalid_utf8": b'{"url": "http://example.com/\xff.jpg"}',
    # SNS / SQS envelopes
    "lambda_sns_not_object": {"Records": [{"Sns": "x"}]},
    "lambda_sns_message_number": {"Records": [{"Sns": {"Message": 5}}]},
    "sns_message_number": {"Type": "Notification", "Message": 5},
    "sns_message_bad_json": {"Type": "Notification", "Message": "{"},
    "sns_type_list": {"Type": [], "Message": "x"},
    "sqs_body_number": {"Records": [{"eventSource": "aws:sqs", "body": 5}]},
    "sqs_body_bad_json": {"Records": [{"eventSource": "aws:sqs", "body": "{nope"}]},
    "sqs_messages_body_list": {"Messages": [{"Body": []}]},
    # S3 records
    "records_entry_number": {"Records": [1]},
    "records_entry_list": {"Records": [[]]},
    "s3_string": {"Records": [{**S3_CREATE, "s3": "x"}]},
    "s3_bucket_string": {"Records": [{**S3_CREATE, "s3": {"bucket": "b", "object": {"key": "k"}}}]},
    "s3_bucket_name_number": {"Records": [{**S3_CREATE, "s3": {"bucket": {"name": 1}, "object": {"key": "k"}}}]},
    "s3_object_list": {"Records": [{**S3_CREATE, "s3": {"bucket": {"name": "b"}, "object": []}}]},
    "s3_key_object": {"Records": [{**S3_CREATE, "s3": {"bucket": {"name": "b"}, "object": {"key": {}}}}]},
    "s3_etag_list": {"Records": [{**S3_CREATE, "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "eTag": []}}}]},
    "s3_event_name_object": {"Records": [{"eventName": {}, "s3": {}}]},
    "s3_response_elements_list": {
        "Records": [{**S3_CREATE, "responseElements": [], "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]
    },
    "s3_event_time_object": {
        "Records": [{**S3_CREATE, "eventTime": {}, "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]
    },
    # MinIO top level
    "minio_key_list": {"EventName": "s3:ObjectCreated:Put", "Key": []},
    "minio_event_name_list": {"EventName": [], "Key": "b/k"},
    # OCI Events 0.1
    "oci_data_list": {**OCI_CE01, "data": []},
    "oci_details_string": {**OCI_CE01, "data": {"resourceName": "k", "additionalDetails": "x"}},
    "oci_resource_name_number": {**OCI_CE01, "data": {"resourceName": 7, "additionalDetails": {"bucketName": "b"}}},
    "oci_event_type_object": {"cloudEventsVersion": "0.1", "eventType": {}, "data": {}},
    "oci_event_id_list": {**OCI_CE01, "eventID": [], "data": {"resourceName": "k", "resourceId": "/n/x/b/b/o/k"}},
    # CloudEvents 1.0 structured
    "ce_type_object": {"specversion": "1.0", "type": {}, "data": {}},
    "ce_id_list": {"specversion": "1.0", "type": "x", "id": [1], "data": {"url": "http://example.com/x.jpg"}},
    "ce_data_number": {"specversion": "1.0", "type": "x", "data": 5},
    "ce_data_base64_list": {"specversion": "1.0", "type": "x", "data_base64": [1]},
    "ce_oci_data_string": {"specversion": "1.0", "type": "com.oraclecloud.objectstorage.createobject", "data": "x"},
    # SeaweedFS filer webhook
    "filer_attributes_list": {**FILER, "message": {"new_entry": {"attributes": [1]}}},
    "filer_message_string": {**FILER, "message": "x"},
    "filer_new_entry_list": {**FILER, "message": {"new_entry": []}},
    "filer_event_type_list": {"event_type": [], "key": "/buckets/b/k.jpg"},
    "filer_mime_object": {**FILER, "message": {"new_entry": {"attributes": {"mime": {}}}}},
    # direct requests
    "request_bucket_list": {"bucket": [], "key": "k"},
    "request_key_number": {"bucket": "b", "key": 1},
    "request_etag_object": {"bucket": "b", "key": "k", "etag": {}},
    "request_url_number": {"url": 1},
    "request_urls_mixed": {"urls": ["http://example.com/x.jpg", 2]},
    "request_urls_object": {"urls": {}},
    "request_name_number": {"name": 5},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bodies_are_bad_events(case: str) -> None:
    body = MALFORMED[case]
    with pytest.raises(BadEventError) as err:
        parse(body)
    assert err.value.status == 400 and err.value.code == "bad_event" and err.value.message


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> Any:
    """Every (path, replacement) that puts a wrong JSON type at one node of a sample."""
    for wrong in (None, 0, 1.5, "", "x", [], [1], {}, True):
        yield path, wrong
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        yield from _mutations(child, (*path, key))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.deepcopy(value)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return out


SAMPLES = {
    "aws": load("s3-put.json"),
    "minio": load("minio-put.json"),
    "oci": load("oci-createobject.json"),
    "minio_top": {"EventName": "s3:ObjectCreated:Put", "Key": "images/a b.jpg"},
    "filer": {**FILER, "message": {"new_entry": {"attributes": {"file_size": 3, "mime": "image/jpeg"}}}},
    "ce": {"specversion": "1.0", "type": "x", "id": "1", "data": {"bucket": "b", "key": "k"}},
    "sns": {"Type": "Notification", "Message": {"Records": load("s3-put.json")["Records"]}},
    "sqs": {"Records": [{"eventSource": "aws:sqs", "body": {"url": "https://example.com/a.jpg"}}]},
    "request": [{"bucket": "b", "key": "k", "etag": "e"}, {"urls": ["https://example.com/a.jpg"]}],
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_wrong_type_anywhere_is_a_client_error_or_accepted_never_a_crash(sample: str) -> None:
    from preprocess_core.errors import PreprocessError

    tried = 0
    for path, wrong in _mutations(SAMPLES[sample]):
        body = json.dumps(_replace(SAMPLES[sample], path, wrong)).encode()
        tried += 1
        try:
            req = parse_request(body, JSON)
        except PreprocessError as exc:
            assert exc.code == "bad_event", (path, wrong, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{sample}: {path} = {wrong!r} crashed with {type(exc).__name__}: {exc}")
        for item in req.inputs:  # what was accepted is well typed
            if isinstance(item, ObjectRef):
                assert all(isinstance(v, str) and v for v in (item.bucket, item.key)), (path, wrong, item)
                assert isinstance(item.etag, str)
            elif isinstance(item, UrlRef):
                assert isinstance(item.url, str) and item.url
    assert tried > 20


def test_quote_and_quote_plus_agree_on_decoding() -> None:
    # A client that used %20 instead of + (quote) must decode the same way.
    event = s3_event("a b.jpg")
    event["Records"][0]["s3"]["object"]["key"] = quote("in/a b.jpg")
    assert parse(event).inputs[0].key == "in/a b.jpg"
