"""Object references refused once, where the request is parsed (``admission``)."""

from __future__ import annotations

import json

import pytest
from preprocess_core import service
from preprocess_core.errors import BadEventError, RefusedSourceError
from preprocess_core.events import ObjectRef, Refused, parse_request

from tests.data.preprocess_fakes import CAT, deps, records, run, store_of


def test_results_objects_are_ignored_for_events_and_refused_for_requests() -> None:
    d = deps({("results", "x.json"): b"{}"})
    out = run(
        json.dumps({"Records": json.loads(records("x.json"))["Records"]}).replace('"images"', '"results"').encode(), d
    )
    assert out["predictions"] == [] and out["ignored"][0]["reason"] == "results_location"
    with pytest.raises(RefusedSourceError):
        run(json.dumps({"bucket": "results", "key": "x.json"}).encode(), d)


def test_an_event_naming_only_impossible_keys_is_a_bad_event() -> None:
    with pytest.raises(BadEventError, match="1024"):
        service.run(parse_request(records("k" * 1025), {}), deps({}), "C")


def test_a_refused_reference_keeps_its_place_and_fails_alone_unread_and_unrecorded() -> None:
    request = parse_request(records("a.jpg", "k" * 1025, "b.jpg"), {}, results=("results", ""))
    assert [type(item) for item in request.inputs] == [ObjectRef, Refused, ObjectRef]
    d = deps({("images", "a.jpg"): CAT, ("images", "b.jpg"): CAT})
    a, bad, b = service.run(request, d, "C")["predictions"]
    assert a["status"] == b["status"] == "ok"
    assert bad == {"bucket": "images", "key": "k" * 1025, "status": "failed", "error": bad["error"]}
    assert bad["error"]["code"] == "bad_event" and "1024" in bad["error"]["message"]
    assert store_of(d).written == {}, "no failure record: no such object can exist"


def test_a_bucket_name_no_store_accepts_is_a_bad_event() -> None:
    with pytest.raises(BadEventError, match="not a bucket name"):
        run(json.dumps({"bucket": "images/in", "key": "a.jpg"}).encode(), deps({("images/in", "a.jpg"): CAT}))


def test_the_results_area_is_the_one_given_to_the_parser() -> None:
    body = json.dumps({"bucket": "out", "key": "v1/x.jpg"}).encode()
    elsewhere = json.dumps({"bucket": "out", "key": "v2/x.jpg"}).encode()
    refused = parse_request(body, {}, results=("out", "v1/")).inputs
    assert isinstance(refused[0], Refused) and isinstance(refused[0].error, RefusedSourceError)
    assert parse_request(elsewhere, {}, results=("out", "v1/")).inputs == [ObjectRef("out", "v2/x.jpg")]
    # Tools that only read what an event names have no results area.
    assert parse_request(body, {}).inputs == [ObjectRef("out", "v1/x.jpg")]
