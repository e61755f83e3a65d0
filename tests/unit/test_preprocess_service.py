"""Orchestration with in-memory fakes, and the OIP v2 client against a fake transport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from preprocess_core import service
from preprocess_core.errors import (
    ImageError,
    ImageTooLargeError,
    ObjectNotFoundError,
    PredictCallError,
    PredictRejectedError,
    PredictTimeoutError,
    PredictUnavailableError,
    StorageError,
    TooManyImagesError,
)
from preprocess_core.events import parse_request
from preprocess_core.predict_client import PredictClient, encode_request, parse_answer, split_batches

from tests.data import preprocess_images as gen
from tests.data.preprocess_fakes import CAT, FakePredictor, WritesFailFor, deps, records, run, store_of
from tests.scripted_http import ScriptedServer


def test_several_records_one_predict_call_and_a_failure_record() -> None:
    objects = {("images", "a.jpg"): CAT, ("images", "bad.jpg"): b"not an image", ("images", "c.jpg"): gen.webp()}
    predictor = FakePredictor()
    d = deps(objects, predictor)
    out = run(records("a.jpg", "bad.jpg", "c.jpg"), d)
    assert len(predictor.calls) == 1
    shape, sources, call_id = predictor.calls[0]
    assert shape == (2, 224, 224, 3) and call_id == "call-1"
    assert [s["key"] for s in sources] == ["a.jpg", "c.jpg"] and sources[0]["etag"] == "etag-a.jpg"
    assert sources[0]["metadata"]["source"]["event_type"] == "ObjectCreated:Put"
    assert sources[0]["metadata"]["image"]["format"] == "JPEG"
    assert sources[0]["metadata"]["exif"]["gps"] is None  # STORE_GPS off
    a, bad, c = out["predictions"]
    assert a["status"] == c["status"] == "ok" and a["result"]["status"] == "created"
    assert bad["status"] == "failed" and bad["error"]["code"] == "not_an_image"
    assert bad["failure"] == {
        "bucket": "results",
        "key": "images/bad.jpg/etag-bad.jpg/failure.json",
        "status": "created",
    }
    doc = d.store.written[("results", "images/bad.jpg/etag-bad.jpg/failure.json")]  # type: ignore[attr-defined]
    assert doc["schema"] == "fn-vision/failure@1" and doc["error"]["code"] == "not_an_image"
    assert doc["source"]["key"] == "bad.jpg" and doc["recorded_at"] == "2026-01-02T03:04:05Z"
    assert out["counts"] == {"images": 3, "ok": 2, "failed": 1, "done": 0, "ignored": 0, "predict_calls": 1}
    # Re-delivery: the failure record is not overwritten.
    again = run(records("bad.jpg"), d)
    assert again["predictions"][0]["failure"]["status"] == "exists"


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


def test_event_larger_than_max_images_is_processed_in_chunks() -> None:
    keys = [f"k{i}.jpg" for i in range(7)]
    predictor = FakePredictor()
    d = deps({("images", k): CAT for k in keys}, predictor, max_images=3)
    out = run(records(*keys), d)
    assert [c[0][0] for c in predictor.calls] == [3, 3, 1]
    assert [p["key"] for p in out["predictions"]] == keys and all(p["status"] == "ok" for p in out["predictions"])
    assert out["counts"]["predict_calls"] == 3 and out["counts"]["ok"] == 7
    # A direct request over MAX_IMAGES is still refused (413), before any work.
    body = json.dumps([{"bucket": "images", "key": k} for k in keys]).encode()
    with pytest.raises(TooManyImagesError):
        run(body, d)


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


def test_image_over_the_decoded_bytes_budget_is_recorded_as_too_large() -> None:
    # 451x300 RGB PNG decodes to 451*300*4 bytes in Pillow.
    png = gen.encode(gen.chelsea(), "PNG")
    d = deps({("images", "big.png"): png}, max_decoded_bytes=451 * 300 * 4 - 1)
    out = run(records("big.png"), d)
    assert out["predictions"][0]["error"]["code"] == "image_too_large"
    assert store_of(d).written[("results", "images/big.png/etag-big.png/failure.json")]["stage"] == "decode"
    with pytest.raises(ImageTooLargeError):
        run(json.dumps({"bucket": "images", "key": "big.png"}).encode(), d)
    assert run(records("big.png"), deps({("images", "big.png"): png}))["predictions"][0]["status"] == "ok"


def test_direct_single_request_raises_its_error_but_still_records_failure() -> None:
    d = deps({("images", "bad.jpg"): b"\x00\x01"})
    with pytest.raises(ImageError):
        run(json.dumps({"bucket": "images", "key": "bad.jpg"}).encode(), d)
    assert ("results", "images/bad.jpg/etag-bad.jpg/failure.json") in d.store.written  # type: ignore[attr-defined]
    with pytest.raises(ObjectNotFoundError):
        run(json.dumps({"bucket": "images", "key": "nope.jpg"}).encode(), d)


def test_gps_only_with_store_gps() -> None:
    predictor = FakePredictor()
    run(
        json.dumps({"bucket": "images", "key": "a.jpg"}).encode(),
        deps({("images", "a.jpg"): CAT}, predictor, store_gps=True),
    )
    assert predictor.calls[0][1][0]["metadata"]["exif"]["gps"] == {"lat": 10.5, "lon": 20.25}


def test_url_and_upload_sources_have_metadata_only() -> None:
    predictor = FakePredictor()
    out = run(json.dumps({"url": "https://example.com/cat.jpg"}).encode(), deps({}, predictor))
    assert out["predictions"][0]["url"] == "https://example.com/cat.jpg" and "result" not in out["predictions"][0]
    source = predictor.calls[0][1][0]
    assert set(source) == {"metadata"} and source["metadata"]["source"]["url"] == "https://example.com/cat.jpg"
    out = run(CAT, deps({}, predictor), {"content-type": "image/jpeg", "x-filename": "mine.jpg"})
    assert out["predictions"][0]["upload"] == "mine.jpg"


def test_predict_failure_fails_the_whole_call() -> None:
    with pytest.raises(PredictUnavailableError):
        run(records("a.jpg"), deps({("images", "a.jpg"): CAT}, FakePredictor(PredictUnavailableError("down"))))


# --- OIP v2 client ----------------------------------------------------------------------------


def native(n: int) -> dict[str, Any]:
    return {"model": {"name": "m"}, "predictions": [{"top_k": [{"index": i}]} for i in range(n)]}


def test_encode_request_is_oip_binary() -> None:
    batch = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    body, head_len = encode_request(batch, [{"metadata": {"x": "é"}}, None], input_name="images", top_k=3)
    header = json.loads(body[:head_len])
    assert header["inputs"][0] == {
        "name": "images",
        "shape": [2, 4, 4, 3],
        "datatype": "UINT8",
        "parameters": {"binary_data_size": 96},
    }
    assert header["parameters"]["top_k"] == 3
    assert json.loads(header["parameters"]["sources"]) == [{"metadata": {"x": "é"}}, None]
    assert body[head_len:] == batch.tobytes()


def test_split_batches_under_the_cap() -> None:
    per = 224 * 224 * 3
    groups = split_batches(40, per, [300] * 40, 5_000_000)
    assert [len(g) for g in groups] == [33, 7]
    assert split_batches(1, per * 100, [10], 1000) == [range(1)]


def test_parse_answer_forms() -> None:
    oip = {"model_name": "m", "outputs": [], "parameters": {"fnvision": json.dumps(native(2))}}
    assert len(parse_answer(json.dumps(oip).encode(), None)["predictions"]) == 2
    assert parse_answer(json.dumps(native(1)).encode() + b"\x00binary", str(len(json.dumps(native(1)))))
    with pytest.raises(PredictRejectedError):
        parse_answer(b'{"error": {"code": "invalid_shape", "message": "x"}}', None)
    with pytest.raises(PredictCallError):  # predict's own server-side codes stay retryable
        parse_answer(b'{"error": {"code": "model_unavailable", "message": "x"}}', None)


PredictAt = Callable[[list[Any]], ScriptedServer]


@pytest.fixture
def predict_at() -> Iterator[PredictAt]:
    """predict as a real loopback server answering from a script (tests/scripted_http.py)."""
    servers: list[ScriptedServer] = []

    def serve(script: list[Any]) -> ScriptedServer:
        server = ScriptedServer("/invoke/1")
        server.script = list(script)
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.close()


def ok(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    header = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    return 200, {}, json.dumps(native(header["inputs"][0]["shape"][0])).encode()


def test_client_retries_then_succeeds_and_propagates_call_id(predict_at: PredictAt) -> None:
    sleeps: list[float] = []
    transport = predict_at([ConnectionResetError("no"), (503, {}, b"busy"), (200, {"fn-http-status": "504"}, b""), ok])
    client = PredictClient(transport.url, sleep=sleeps.append, backoff=0.1)
    answer = client.predict(np.zeros((2, 8, 8, 3), np.uint8), [None, None], "call-9")
    assert len(answer.predictions) == 2 and sleeps == [0.1, 0.2, 0.4]
    headers = transport.seen[-1]["headers"]
    assert headers["Fn-Call-Id"] == "call-9" and headers["X-Parent-Call-Id"] == "call-9"


def test_client_gives_up_with_predict_unavailable(predict_at: PredictAt) -> None:
    transport = predict_at([(502, {}, b"")] * 3)
    client = PredictClient(transport.url, sleep=lambda s: None, attempts=3)
    with pytest.raises(PredictUnavailableError) as err:
        client.predict(np.zeros((1, 8, 8, 3), np.uint8), [None], None)
    assert err.value.code == "predict_unavailable" and err.value.status == 502


def test_client_timeout_and_error_bodies_are_not_retried(predict_at: PredictAt) -> None:
    slow = predict_at([TimeoutError()])
    client = PredictClient(slow.url, sleep=lambda s: None, timeout=0.2)
    with pytest.raises(PredictTimeoutError):
        client.predict(np.zeros((1, 8, 8, 3), np.uint8), [None], None)
    assert len(slow.seen) == 1
    bad = predict_at([(200, {}, b'{"error": {"code": "unknown_payload", "message": "?"}}')])
    answer = PredictClient(bad.url, sleep=lambda s: None).predict(
        np.zeros((1, 8, 8, 3), np.uint8), [None], None
    )
    assert "unknown_payload" in answer.rejected[0].message and len(bad.seen) == 1


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ((422, {}, b'{"error": {"code": "invalid_shape", "message": "?"}}'), "rejected"),  # trigger pass-through
        ((200, {"fn-http-status": "400"}, b'{"error": {"code": "invalid_payload"}}'), "rejected"),
        ((413, {}, b"too big"), "rejected"),
        ((500, {}, b'{"error": {"code": "internal_error"}}'), PredictCallError),
        ((200, {"fn-http-status": "500"}, b'{"error": {"code": "config_error"}}'), PredictCallError),
        ((200, {}, b"<html>proxy</html>"), PredictCallError),
    ],
)
def test_client_error_classes(reply: tuple[int, dict[str, str], bytes], outcome: Any, predict_at: PredictAt) -> None:
    transport = predict_at([reply])
    client = PredictClient(transport.url, sleep=lambda s: None, attempts=1)
    batch = np.zeros((2, 8, 8, 3), np.uint8)
    if outcome == "rejected":
        answer = client.predict(batch, [None, None], None)
        assert set(answer.rejected) == {0, 1} and answer.rejected[0].status == 422
        assert answer.rejected[0].code == "predict_rejected" and answer.predictions == [{}, {}]
    else:
        with pytest.raises(outcome) as err:
            client.predict(batch, [None, None], None)
        assert err.value.status == 502 and not isinstance(err.value, PredictRejectedError)
    assert len(transport.seen) == 1  # neither kind is retried inside the client


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_client_retries_transient_statuses(status: int, predict_at: PredictAt) -> None:
    transport = predict_at([(status, {}, b""), ok])
    client = PredictClient(transport.url, sleep=lambda s: None)
    assert len(client.predict(np.zeros((1, 8, 8, 3), np.uint8), [None], None).predictions) == 1


def test_rejected_group_does_not_hide_the_predictions_of_other_groups(predict_at: PredictAt) -> None:
    reject = (200, {}, b'{"error": {"code": "invalid_value", "message": "?"}}')
    transport = predict_at([ok, reject])
    client = PredictClient(transport.url, max_request_bytes=400_000)
    answer = client.predict(np.zeros((4, 224, 224, 3), np.uint8), [None] * 4, None)
    assert answer.calls == 2 and set(answer.rejected) == {2, 3}
    assert [bool(p) for p in answer.predictions] == [True, True, False, False]


def test_client_splits_large_batches_and_keeps_order(predict_at: PredictAt) -> None:
    transport = predict_at([ok, ok, ok])
    client = PredictClient(transport.url, max_request_bytes=400_000)
    batch = np.zeros((5, 224, 224, 3), np.uint8)
    answer = client.predict(batch, [{"metadata": {"i": i}} for i in range(5)], None)
    assert answer.calls == 3 and len(answer.predictions) == 5
    assert all(len(r["body"]) <= 400_000 for r in transport.seen)
    assert transport.connections == 1  # one pooled keep-alive connection to predict


def test_client_without_url() -> None:
    with pytest.raises(PredictUnavailableError):
        PredictClient("").predict(np.zeros((1, 8, 8, 3), np.uint8), [None], None)


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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_duplicate_delivery_costs_one_list_and_no_fetch_or_inference() -> None:
    from fnvision_common.result_keys import result_key
    from preprocess_core.done import ServedModel

    clock = Clock()
    objects = {("images", "a.jpg"): CAT}
    d = replace(deps(objects), served_model=ServedModel(ttl=10, clock=clock))
    predictor = d.predictor
    assert isinstance(predictor, FakePredictor)
    first = service.run(parse_request(records("a.jpg"), {}), d, "C1")
    assert first["counts"]["ok"] == 1 and len(predictor.calls) == 1
    # predict recorded the result (the fake answers but writes nothing): put it where predict would.
    d.store.written[("results", result_key("", "images", "a.jpg", "etag-a.jpg", "m", "1"))] = {}  # type: ignore[attr-defined]
    d.store.objects.clear()  # type: ignore[attr-defined]  # a fetch now would fail: the check must not fetch
    again = service.run(parse_request(records("a.jpg"), {}), d, "C2")
    (item,) = again["predictions"]
    assert item["status"] == "done" and item["result"]["status"] == "exists"
    assert item["result"]["key"] == "images/a.jpg/etag-a.jpg/m@1.json"
    assert again["counts"]["done"] == 1 and again["counts"]["predict_calls"] == 0 and len(predictor.calls) == 1
    # A failure record counts as done too; a direct request (no event) is always processed.
    clock.now += 11  # past the ttl: the model predict serves is unknown again, so the object is processed
    with pytest.raises(ObjectNotFoundError):
        service.run(parse_request(json.dumps({"bucket": "images", "key": "a.jpg"}).encode(), {}), d, "C3")
    stale = service.run(parse_request(records("a.jpg"), {}), d, "C4")
    assert stale["predictions"][0]["status"] == "failed", "stale model knowledge: processed, not answered as done"


RISKY_PNG = gen.encode(gen.chelsea().resize((2000, 2000)).convert("RGBA"), "PNG")  # 16 MB decoded


def test_a_risky_decode_leaves_no_marker_once_it_ended() -> None:
    d = deps({("images", "big.png"): RISKY_PNG}, max_decoded_bytes=40_000_000)
    out = service.run(parse_request(records("big.png"), {}), d, "C")
    assert out["predictions"][0]["status"] == "ok"
    assert not [k for _, k in d.store.written if "attempt-" in k]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("left_behind", "outcome"), [(1, "ok"), (2, "failed")])
def test_markers_of_decodes_that_never_ended_stop_a_poison_loop(left_behind: int, outcome: str) -> None:
    from fnvision_common.result_keys import attempt_key

    d = deps({("images", "big.png"): RISKY_PNG}, max_decoded_bytes=40_000_000)
    for n in range(1, left_behind + 1):  # what containers killed mid-decode leave behind
        d.store.written[("results", attempt_key("", "images", "big.png", "etag-big.png", n))] = {}  # type: ignore[attr-defined]
    (item,) = service.run(parse_request(records("big.png"), {}), d, "C")["predictions"]
    assert item["status"] == outcome
    if outcome == "failed":
        assert item["error"]["code"] == "decode_killed" and item["failure"]["status"] == "created"
    else:
        assert not [k for _, k in d.store.written if "attempt-" in k]  # type: ignore[attr-defined]


def test_a_small_or_baseline_decode_writes_no_marker() -> None:
    d = deps({("images", "a.jpg"): CAT, ("images", "big.png"): RISKY_PNG})  # default budget: 100 MB
    service.run(parse_request(records("a.jpg", "big.png"), {}), d, "C")
    assert not d.store.written  # type: ignore[attr-defined]
