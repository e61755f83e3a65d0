"""Failure records and when a failure fails the call ("nothing lost", ``failures``)."""

from __future__ import annotations

import json

import pytest
from preprocess_core.errors import ImageError, ObjectNotFoundError, StorageError

from tests.data.preprocess_fakes import CAT, FakePredictor, deps, records, run, store_of


def test_event_with_only_permanent_failures_answers_200_records_them_and_does_not_call_predict() -> None:
    predictor = FakePredictor()
    d = deps({("images", "bad.jpg"): b""}, predictor)
    out = run(records("gone.jpg", "bad.jpg"), d)
    assert predictor.calls == []
    assert [p["error"]["code"] for p in out["predictions"]] == ["object_not_found", "not_an_image"]
    # A missing object version (404) is permanent: recorded under the event's ETag, stage "fetch".
    gone = store_of(d).written[("results", "images/gone.jpg/etag-gone.jpg/failure.json")]
    assert gone["stage"] == "fetch" and gone["error"]["code"] == "object_not_found"
    assert out["predictions"][0]["failure"]["status"] == "created"
    assert store_of(d).written[("results", "images/bad.jpg/etag-bad.jpg/failure.json")]["stage"] == "decode"


def test_event_storage_read_error_fails_the_call_after_predicting_the_good_items() -> None:
    predictor = FakePredictor()
    d = deps({("images", "a.jpg"): CAT, ("images", "b.jpg"): CAT}, predictor)
    store_of(d).broken.add("b.jpg")
    with pytest.raises(StorageError) as err:
        run(records("a.jpg", "b.jpg"), d)
    assert err.value.status == 502 and err.value.code == "storage_error" and "s3://images/b.jpg" in err.value.message
    # a.jpg was predicted (and recorded by predict) before the call failed: the retry answers "exists".
    assert [s["key"] for s in predictor.calls[0][1]] == ["a.jpg"]
    assert store_of(d).written == {}  # a transient read error is not a permanent failure record
    store_of(d).broken.clear()
    out = run(records("a.jpg", "b.jpg"), d)  # the event source delivers again
    assert [p["status"] for p in out["predictions"]] == ["ok", "ok"]


def test_event_failure_record_not_written_fails_the_call() -> None:
    d = deps({("images", "bad.jpg"): b"not an image", ("images", "a.jpg"): CAT})
    store_of(d).writes_fail = True
    with pytest.raises(StorageError) as err:
        run(records("a.jpg", "bad.jpg"), d)
    assert "storage_error" in err.value.message and "s3://images/bad.jpg" in err.value.message


def test_direct_requests_keep_per_item_storage_errors() -> None:
    # Not an event: nobody retries, the caller reads the per-item status (or the single error).
    d = deps({("images", "a.jpg"): CAT})
    store_of(d).broken.add("b.jpg")
    body = json.dumps([{"bucket": "images", "key": "a.jpg"}, {"bucket": "images", "key": "b.jpg"}]).encode()
    out = run(body, d)
    assert [p["status"] for p in out["predictions"]] == ["ok", "failed"]
    assert out["predictions"][1]["error"]["code"] == "storage_error"
    with pytest.raises(StorageError):
        run(json.dumps({"bucket": "images", "key": "b.jpg"}).encode(), d)


def test_direct_single_request_raises_its_error_but_still_records_failure() -> None:
    d = deps({("images", "bad.jpg"): b"\x00\x01"})
    with pytest.raises(ImageError):
        run(json.dumps({"bucket": "images", "key": "bad.jpg"}).encode(), d)
    assert ("results", "images/bad.jpg/etag-bad.jpg/failure.json") in d.store.written  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFoundError):
        run(json.dumps({"bucket": "images", "key": "nope.jpg"}).encode(), d)
