"""Storage notifications (preprocess_core.storage_events): S3 `Records` from AWS, MinIO, Ceph and moto,
`s3:TestEvent`, OCI Events, MinIO top-level webhooks and SeaweedFS filer webhooks — on their recorded
samples, with the key encoding of each source and every malformed shape."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from preprocess_core.events import ObjectRef
from preprocess_core.inputs import Ignored

from tests.data.event_samples import Expect, assert_bad_event, check_sample, check_samples, load_json, parse, s3_event

FORMATS = {"s3_records", "s3_test_event", "oci_event", "minio_top_level", "seaweedfs_filer"}
# Raw object names that exercise every decoding rule.
KEYS = ["in/cat.jpg", "my photo.jpg", "a+b.jpg", "ünï/çødé 猫.png", "deep/er/path/x y+z.jpeg", "100%.jpg"]

SAMPLES = {
    "s3-put.json": Expect("s3_records", [
        ObjectRef(bucket="sourcebucket", key="HappyFace.jpg", etag="d41d8cd98f00b204e9800998ecf8427e", size=1024,
                  event_id="C3D13FE58DE4C810", event_time="1970-01-01T00:00:00.123Z", event_type="ObjectCreated:Put",
                  origin="aws")]),
    "minio-put.json": Expect("s3_records", [  # `Records` win over the top-level EventName/Key
        ObjectRef(bucket="ai-demo", key="service.yaml", etag="702314f405adeaa9aa042985692cd49e", size=576,
                  content_type="text/yaml", event_id="178869619B8B3C05", event_time="2023-09-26T09:38:47.702Z",
                  event_type="s3:ObjectCreated:Put", origin="minio")]),
    "ceph-put.json": Expect("s3_records", [  # Ceph sends the size as a string
        ObjectRef(bucket="mybucket1", key="myimage1.jpg", etag="37b51d194a7513e45b56f6524f2d51f2", size=1024,
                  event_id="503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595",
                  event_time="2019-11-22T13:47:35.124724Z", event_type="ObjectCreated:Put", origin="ceph")]),
    "oci-createobject.json": Expect("oci_event", [
        ObjectRef(bucket="bucket-gigis-pizza-discounts", key="campaigns.json",
                  etag="199f8dbf-0b8c-41b6-9596-4d2a6792d7e5", event_id="3e47d127-19de-6eb8-eb67-0c1ab961fcbc",
                  event_time="2020-01-21T16:26:30.849Z", event_type="com.oraclecloud.objectstorage.createobject",
                  origin="oci")]),
    "minio-top-level.json": Expect("minio_top_level", [  # the key is raw: `+` and space stay
        ObjectRef(bucket="images", key="in/a+b c.jpg", event_type="s3:ObjectCreated:Put", origin="minio")]),
    "moto-s3-test-event.json": Expect("s3_test_event", [Ignored("test_event", event_type="s3:TestEvent")]),
    "seaweedfs-filer-create.http": Expect("seaweedfs_filer", [  # the ETag: extended Seaweed-X-Amz-ETag
        ObjectRef(bucket="images", key="in/a+b c.jpg", etag="443d7348fd4e746fb3034d92ec4b543a", size=64,
                  content_type="image/jpeg", event_type="create", origin="seaweedfs")]),
    "seaweedfs-filer-directory.http": Expect("seaweedfs_filer", [
        Ignored("internal_path", event_type="create", detail="/buckets/images/in")]),
}


def test_every_storage_sample_has_a_row() -> None:
    check_samples(SAMPLES, FORMATS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(name: str) -> None:
    check_sample(name, SAMPLES[name])


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
    event = load_json("oci-createobject.json")
    event["data"]["resourceName"] = key
    assert parse(event).inputs[0].key == key


def test_quote_and_quote_plus_agree_on_decoding() -> None:
    # A client that used %20 instead of + (quote) must decode the same way.
    event = s3_event("a b.jpg")
    event["Records"][0]["s3"]["object"]["key"] = quote("in/a b.jpg")
    assert parse(event).inputs[0].key == "in/a b.jpg"


def test_old_minio_event_type_field() -> None:
    assert parse({"EventType": "s3:ObjectCreated:Put", "Key": "images/x.jpg"}).inputs[0].key == "x.jpg"
    req = parse({"EventType": "s3:ObjectRemoved:Delete", "Key": "images/x.jpg"})
    assert req.inputs == [] and req.ignored[0].reason == "not_a_create_event"


# --- acknowledged no-ops and tolerated variants -----------------------------------------------


@pytest.mark.parametrize("name", ["ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:Post"])
def test_non_create_s3_events_are_ignored(name: str) -> None:
    req = parse(s3_event("a.jpg", name=name))
    assert req.inputs == [] and req.ignored[0].event_type == name


@pytest.mark.parametrize("kind", ["deleteobject", "createbucket"])
def test_other_oci_events_are_ignored(kind: str) -> None:
    event = load_json("oci-createobject.json")
    event["eventType"] = "com.oraclecloud.objectstorage." + kind
    req = parse(event)
    assert req.inputs == [] and req.ignored[0].reason == "not_a_create_event"


def test_oci_updateobject_and_tolerant_fields() -> None:
    event = load_json("oci-createobject.json")
    event["eventType"] = "com.oraclecloud.objectstorage.updateobject"
    del event["extensions"], event["eventTypeVersion"], event["data"]["resourceId"]
    event["data"]["freeFormTags"] = {}
    assert parse(event).inputs[0].key == "campaigns.json"


def test_oci_bucket_from_resource_id_when_details_missing() -> None:
    event = load_json("oci-createobject.json")
    del event["data"]["additionalDetails"]
    ref = parse(event).inputs[0]
    assert (ref.bucket, ref.key, ref.etag) == ("bucket-gigis-pizza-discounts", "campaigns.json", "")


def test_seaweedfs_multipart_parts_are_internal() -> None:
    internal = {"event_type": "create", "key": "/buckets/images/.uploads/x/0001.part", "message": {}}
    assert parse(internal).ignored[0].reason == "internal_path"


def test_seaweedfs_version_internals_are_internal() -> None:
    version = {"event_type": "create", "key": "/buckets/images/a.jpg.versions/v_1", "message": {"new_entry": {}}}
    assert parse(version).ignored[0].reason == "internal_path"


def test_seaweedfs_rename_names_the_new_location() -> None:
    entry = {"name": "b.jpg", "attributes": {"file_size": 5, "md5": "XUFAKrxLKna5cZ2REBfFkg=="}}
    event = {"event_type": "rename", "key": "/buckets/images/tmp/a.jpg",
             "message": {"new_entry": entry, "new_parent_path": "/buckets/images/final"}}
    assert parse(event).inputs == [ObjectRef("images", "final/b.jpg", "5d41402abc4b2a76b9719d911017c592", 5,
                                             event_type="rename", origin="seaweedfs")]


# --- malformed notifications: always 400 bad_event, never a crash -----------------------------

OCI_CE01 = {"cloudEventsVersion": "0.1", "eventType": "com.oraclecloud.objectstorage.createobject"}
S3_CREATE = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}
FILER = {"event_type": "create", "key": "/buckets/b/k.jpg"}
MALFORMED: dict[str, Any] = {
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
    # SeaweedFS filer webhook
    "filer_attributes_list": {**FILER, "message": {"new_entry": {"attributes": [1]}}},
    "filer_message_string": {**FILER, "message": "x"},
    "filer_new_entry_list": {**FILER, "message": {"new_entry": []}},
    "filer_event_type_list": {"event_type": [], "key": "/buckets/b/k.jpg"},
    "filer_mime_object": {**FILER, "message": {"new_entry": {"attributes": {"mime": {}}}}},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_notifications_are_bad_events(case: str) -> None:
    assert_bad_event(MALFORMED[case])
