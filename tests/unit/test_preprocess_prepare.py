"""Preparing inputs (``prepare``): fetch by kind, decode budget, metadata, the duplicate check, the decode guard."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from preprocess_core import service
from preprocess_core.errors import ImageTooLargeError, ObjectNotFoundError
from preprocess_core.events import parse_request

from tests.data import preprocess_images as gen
from tests.data.preprocess_fakes import CAT, FakePredictor, deps, records, run, store_of


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
