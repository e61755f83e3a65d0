"""Event builders: the exact shapes of fn-contract.md §4 (OCI CloudEvents 0.1, AWS S3 Records)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from fnvision_common.objects import ObjectRef

from triggers.events import OCI_CREATE, encode_s3_key, oci_object_event, rfc3339, s3_records, to_body
from triggers.fakefn import parse_refs

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
KEYS = ["cat.jpg", "in/sp ace.jpg", "a+b/c+d.png", "photos/été/ñ 日本.jpeg", "x%2Fy.jpg", "deep/a/b/c/d.jpg"]


def test_oci_event_has_the_sample_shape() -> None:
    sample = json.loads((SAMPLES / "oci-createobject.json").read_text())
    ref = ObjectRef("images", "in/cat 1+2.jpg", "abc123", 10)
    event = oci_object_event(ref, namespace="ns", event_time=datetime(2026, 1, 2, 3, 4, 5, 678000, UTC))
    # every field of the real sample is present with the same nesting
    assert set(sample) <= set(event)
    assert set(sample["data"]) <= set(event["data"])
    assert set(sample["data"]["additionalDetails"]) - {"bucketId"} <= set(event["data"]["additionalDetails"])
    assert event["eventType"] == OCI_CREATE
    assert event["cloudEventsVersion"] == "0.1" and event["eventTypeVersion"] == "2.0"
    assert event["source"] == "ObjectStorage" and event["contentType"] == "application/json"
    assert event["eventTime"] == "2026-01-02T03:04:05.678Z"
    assert event["data"]["resourceName"] == "in/cat 1+2.jpg"  # plain, not encoded
    assert event["data"]["resourceId"] == "/n/ns/b/images/o/in/cat 1+2.jpg"
    assert event["data"]["additionalDetails"] == {
        "bucketName": "images", "namespace": "ns", "eTag": "abc123", "archivalState": "Available"}
    assert event["eventID"] != oci_object_event(ref)["eventID"]


@pytest.mark.parametrize("key", KEYS)
def test_s3_key_is_form_encoded_and_round_trips(key: str) -> None:
    encoded = encode_s3_key(key)
    assert " " not in encoded and "/" in encoded or "/" not in key
    assert unquote_plus(encoded) == key


def test_s3_key_encoding_examples() -> None:
    assert encode_s3_key("red flower.jpg") == "red+flower.jpg"
    assert encode_s3_key("a+b/c.jpg") == "a%2Bb/c.jpg"


def test_s3_records_shape_matches_sample() -> None:
    sample = json.loads((SAMPLES / "s3-put.json").read_text())["Records"][0]
    body = s3_records([ObjectRef("images", "in/a b.jpg", "e1", 5), ObjectRef("images", "c.jpg", "e2")])
    first = body["Records"][0]
    assert set(sample) <= set(first)
    assert set(sample["s3"]["object"]) - {"urlDecodedKey", "versionId"} <= set(first["s3"]["object"])
    assert first["eventSource"] == "aws:s3" and first["eventName"] == "ObjectCreated:Put"
    assert first["s3"]["bucket"]["name"] == "images"
    obj = first["s3"]["object"]
    assert (obj["key"], obj["eTag"], obj["size"]) == ("in/a+b.jpg", "e1", 5)
    assert "size" not in body["Records"][1]["s3"]["object"]


@pytest.mark.parametrize("key", KEYS)
def test_bodies_parse_back_to_the_same_reference(key: str) -> None:
    ref = ObjectRef("images", key, "0123abcd")
    for event in (oci_object_event(ref), s3_records([ref])):
        body = to_body(event)
        assert parse_refs(body, {"Content-Type": "application/json"}) == [ref]  # via preprocess's parser


def test_rfc3339_is_utc_with_millis() -> None:
    assert rfc3339(datetime(2026, 5, 6, 7, 8, 9, 1500, UTC)) == "2026-05-06T07:08:09.001Z"
    assert rfc3339().endswith("Z")


def _matches(condition: object, event: object) -> bool:
    """OCI Events filter semantics: listed fields must exist with the same nesting; lists are OR."""
    if isinstance(condition, dict):
        return isinstance(event, dict) and all(k in event and _matches(v, event[k]) for k, v in condition.items())
    if isinstance(condition, list):
        return any(_matches(c, event) for c in condition)
    return condition == event


def test_shipped_oci_rule_matches_our_events_for_the_input_bucket_only() -> None:
    rules = Path(__file__).resolve().parents[2] / "triggers" / "oci"
    condition = json.loads((rules / "events-rule-condition.json").read_text())
    assert json.loads(json.loads((rules / "events-rule.json").read_text())["condition"]) == condition
    assert _matches(condition, oci_object_event(ObjectRef("images", "a.jpg", "e")))
    assert _matches(condition, oci_object_event(ObjectRef("images", "a.jpg", "e"),
                                                event_type="com.oraclecloud.objectstorage.updateobject"))
    assert not _matches(condition, oci_object_event(ObjectRef("results", "a.json", "e")))
    assert not _matches(condition, oci_object_event(ObjectRef("images", "a.jpg", "e"),
                                                    event_type="com.oraclecloud.objectstorage.deleteobject"))
