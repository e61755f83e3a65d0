"""predict's answer per item (``batch_predict``): rejections and results predict could not record."""

from __future__ import annotations

import json

import pytest
from preprocess_core import service
from preprocess_core.errors import PredictRejectedError, StorageError
from preprocess_core.events import parse_request

from tests.data.preprocess_fakes import CAT, FakePredictor, WritesFailFor, deps, records, run, store_of


def test_predict_rejection_is_permanent_and_recorded() -> None:
    reject = PredictRejectedError("predict refused the request: invalid_shape: expected [N,224,224,3]")
    d = deps({("images", "a.jpg"): CAT, ("images", "b.jpg"): CAT}, FakePredictor(reject=reject))
    out = run(records("a.jpg", "b.jpg"), d)  # event: answered 200, nothing retried, nothing lost
    assert [p["error"]["code"] for p in out["predictions"]] == ["predict_rejected"] * 2
    doc = store_of(d).written[("results", "images/a.jpg/etag-a.jpg/failure.json")]
    assert doc["stage"] == "predict" and doc["error"]["code"] == "predict_rejected"
    assert doc["source"]["bucket"] == "images" and doc["source"]["key"] == "a.jpg"
    assert out["predictions"][0]["failure"]["status"] == "created"
    # A direct request for one image answers with the rejection (422; 200 on /invoke).
    with pytest.raises(PredictRejectedError) as err:
        run(json.dumps({"url": "https://example.com/cat.jpg"}).encode(), d)
    assert err.value.status == 422


def test_a_result_the_store_refused_gets_a_failure_record_and_the_call_succeeds() -> None:
    objects = {("images", k): CAT for k in ("a.jpg", "b.jpg", "c.jpg")}
    d = deps(objects, WritesFailFor({"b.jpg": "record_refused"}))
    answer = service.run(parse_request(records("a.jpg", "b.jpg", "c.jpg"), {}), d, "C")
    a, b, c = answer["predictions"]
    assert a["status"] == c["status"] == "ok"
    assert b["status"] == "failed" and b["error"]["code"] == "record_refused"
    assert b["failure"]["status"] == "created"
    (record,) = d.store.written.values()  # type: ignore[attr-defined]
    assert record["stage"] == "record" and record["source"]["key"] == "b.jpg"


def test_a_result_not_written_for_an_outage_fails_the_event_after_the_others() -> None:
    objects = {("images", k): CAT for k in ("a.jpg", "b.jpg")}
    predictor = WritesFailFor({"a.jpg": "storage_unavailable"})
    with pytest.raises(StorageError, match="1 of 2 objects"):
        service.run(parse_request(records("a.jpg", "b.jpg"), {}), deps(objects, predictor), "C")
    assert len(predictor.calls) == 1, "b.jpg was classified (and recorded by predict) in the same call"
