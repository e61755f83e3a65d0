"""Orchestration with in-memory fakes (chunks, one predict call per chunk), and the OIP v2 client against a
fake transport (kept here until the codec moves to ``fnvision_common``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from preprocess_core.errors import (
    PredictCallError,
    PredictRejectedError,
    PredictTimeoutError,
    PredictUnavailableError,
    TooManyImagesError,
)
from preprocess_core.predict_client import PredictClient, encode_request, parse_answer, split_batches

from tests.data import preprocess_images as gen
from tests.data.preprocess_fakes import CAT, FakePredictor, deps, records, run
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
