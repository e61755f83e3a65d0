"""The dispatcher (preprocess_core.events): its tables of recognisers, direct requests, uploads, JSON lists,
the MAX_IMAGES rule, duplicates, and malformed bodies — a wrong JSON type anywhere in any sample is a
400, never a crash. The formats themselves: test_preprocess_storage_events.py, test_preprocess_envelopes.py."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from preprocess_core import events
from preprocess_core.errors import BadEventError, PreprocessError, TooManyImagesError
from preprocess_core.events import ObjectRef, Upload, UrlRef, parse_request

from tests.data.event_samples import (
    JSON,
    Expect,
    assert_bad_event,
    check_sample,
    check_samples,
    claimed_by,
    load,
    names,
    parse,
    s3_event,
)

KEYS = ["in/cat.jpg", "my photo.jpg", "a+b.jpg", "ünï/çødé 猫.png", "deep/er/path/x y+z.jpeg", "100%.jpg"]
NOT_EVENTS = {"multipart", "upload"}  # uploads, tested below and in test_preprocess_multipart_settings.py

SAMPLES = {
    "request.json": Expect(
        "request", [ObjectRef("images", "in/my photo+1.jpg", "d41d8cd98f00b204e9800998ecf8427e")], from_event=False
    ),
    "request-list.json": Expect(
        "list",
        [
            ObjectRef("images", "in/cat.jpg", "d41d8cd98f00b204e9800998ecf8427e"),
            ObjectRef("images", "in/my photo+1.jpg"),  # raw key; bucket = INPUT_BUCKET
            UrlRef("https://example.com/cat.jpg"),
            UrlRef("https://example.com/a.jpg"),
            UrlRef("https://example.com/b.png"),
            UrlRef("https://example.com/classy.jpg"),
        ],
        from_event=False,
        options={"default_bucket": "images"},
    ),
}


# --- the tables ---------------------------------------------------------------------------------


def test_every_format_has_a_sample_and_every_sample_a_format() -> None:
    claimed = {claimed_by(load(name)) for name in names()}  # raises for a sample no format claims
    formats = {fmt.name for fmt in (*events.BODY_FORMATS, *events.JSON_FORMATS)}
    assert formats - NOT_EVENTS <= claimed


def test_the_module_docstring_lists_the_formats_in_table_order() -> None:
    documented = re.findall(r"^\s*\d+\. ``(\w+)``", events.__doc__ or "", flags=re.MULTILINE)
    assert documented == [fmt.name for fmt in (*events.BODY_FORMATS, *events.JSON_FORMATS)]


def test_only_uploads_and_requests_are_not_events() -> None:
    direct = {fmt.name for fmt in (*events.BODY_FORMATS, *events.JSON_FORMATS) if not fmt.event}
    assert direct == NOT_EVENTS | {"request"}


def test_every_request_sample_has_a_row() -> None:
    check_samples(SAMPLES, {"list", "request"})


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_request_samples(name: str) -> None:
    check_sample(name, SAMPLES[name])


# --- direct requests and uploads ----------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_direct_request_keys_are_raw(key: str) -> None:
    (ref,) = parse({"bucket": "images", "key": key}).inputs
    assert ref == ObjectRef(bucket="images", key=key)


def test_url_and_classy_and_lists() -> None:
    assert parse({"url": "https://example.com/cat.jpg"}).inputs == [UrlRef("https://example.com/cat.jpg")]
    assert parse({"name": "http://example.com/c.png"}).inputs == [UrlRef("http://example.com/c.png")]
    req = parse([{"bucket": "b", "key": "k1"}, {"url": "https://x/y.jpg"}])
    assert req.inputs == [ObjectRef("b", "k1"), UrlRef("https://x/y.jpg")] and not req.from_event


def test_key_without_bucket_uses_input_bucket() -> None:
    assert parse({"key": "k.jpg"}, default_bucket="images").inputs == [ObjectRef("images", "k.jpg")]
    with pytest.raises(BadEventError):
        parse({"key": "k.jpg"})


def test_input_bucket_is_for_direct_requests_only() -> None:
    # Inside an envelope a bare {"key"} names no bucket: INPUT_BUCKET is not applied there.
    envelope = {"Type": "Notification", "TopicArn": "arn:t", "Message": json.dumps({"key": "k.jpg"})}
    with pytest.raises(BadEventError):
        parse(envelope, default_bucket="images")


def test_a_list_is_from_an_event_when_any_element_is() -> None:
    mixed = parse([{"bucket": "b", "key": "k1"}, [s3_event("a.jpg")]])
    assert [r.key for r in mixed.inputs] == ["k1", "a.jpg"] and mixed.from_event


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


# --- MAX_IMAGES and duplicates ------------------------------------------------------------------


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


def test_several_records_in_one_event_and_duplicates_dropped() -> None:
    event = s3_event("a.jpg")
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "b.jpg"
    event["Records"] += [second, copy.deepcopy(second)]
    assert [r.key for r in parse(event).inputs] == ["a.jpg", "b.jpg"]


# --- malformed bodies: always 400 bad_event, never a crash --------------------------------------

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
    assert_bad_event(MALFORMED[case])


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


FILER = {"event_type": "create", "key": "/buckets/b/k.jpg"}
# Shapes the sample files do not have: JSON inside envelopes as objects rather than strings, a CloudEvent
# holding a direct request, a list of requests.
SHAPES: dict[str, tuple[Any, dict[str, str]]] = {
    "ce_request": ({"specversion": "1.0", "type": "x", "id": "1", "data": {"bucket": "b", "key": "k"}}, JSON),
    "sns_object": ({"Type": "Notification", "Message": {"Records": load("s3-put.json").json()["Records"]}}, JSON),
    "sqs_object": ({"Records": [{"eventSource": "aws:sqs", "body": {"url": "https://example.com/a.jpg"}}]}, JSON),
    "requests": ([{"bucket": "b", "key": "k", "etag": "e"}, {"urls": ["https://example.com/a.jpg"]}], JSON),
    "filer": ({**FILER, "message": {"new_entry": {"attributes": {"file_size": 3, "mime": "image/jpeg"}}}}, JSON),
}
for _name in names():
    SHAPES[_name] = (load(_name).json(), load(_name).headers)


@pytest.mark.parametrize("sample", sorted(SHAPES))
def test_a_wrong_type_anywhere_is_a_client_error_or_accepted_never_a_crash(sample: str) -> None:
    payload, headers = SHAPES[sample]
    tried = 0
    for path, wrong in _mutations(payload):
        body = json.dumps(_replace(payload, path, wrong)).encode()
        tried += 1
        try:
            req = parse_request(body, headers)
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
