"""preprocess's HTTP edge (``edge``): the bearer token, liveness probes, errors → replies, the cold call."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from preprocess_core import edge
from preprocess_core.deps import Deps
from preprocess_core.errors import ConfigError, UnauthorizedError

from tests.data.preprocess_fakes import CAT, FakePredictor, deps, records

JSON = {"content-type": "application/json"}
TRIGGER = {"fn-intent": "httprequest"}


def call(body: bytes, headers: dict[str, str] | None = None, *, method: str = "POST", cold: bool = False) -> edge.Call:
    return edge.Call(method, headers if headers is not None else JSON, body, "C", cold)


def answer(reply: Any) -> dict[str, Any]:
    assert reply.headers == {"Content-Type": "application/json"}
    result: dict[str, Any] = json.loads(reply.body)
    return result


def test_auth() -> None:
    edge.check_auth({}, "", gateway=True)
    edge.check_auth({}, "s3cret", gateway=False)  # fn invoke is authenticated by the platform
    edge.check_auth({"authorization": "Bearer s3cret"}, "s3cret", gateway=True)
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic s3cret"}):
        with pytest.raises(UnauthorizedError):
            edge.check_auth(headers, "s3cret", gateway=True)


def test_a_wrong_token_is_answered_before_any_work() -> None:
    predictor = FakePredictor()
    d = deps({}, predictor, auth_token="s3cret")
    reply = edge.handle(call(CAT, {**TRIGGER, "content-type": "image/jpeg", "authorization": "Bearer no"}), lambda: d)
    assert (reply.status, answer(reply)["error"]["code"]) == (401, "unauthorized") and predictor.calls == []
    assert answer(reply)["call_id"] == "C"


def test_liveness_probes_of_trigger_calls() -> None:
    d = deps({})
    for method in ("GET", "HEAD", "get"):
        reply = edge.handle(call(b"", TRIGGER, method=method), lambda: d)
        assert reply.status == 200 and answer(reply) == {"ok": True, "function": "preprocess"}
    # Not a trigger call, or a body: a request like any other (an empty one names no image).
    assert edge.handle(call(b"", {}, method="GET"), lambda: d).status == 400
    assert answer(edge.handle(call(b"{}", TRIGGER, method="GET"), lambda: d))["error"]["code"] == "bad_event"


def test_errors_become_replies_with_their_status_and_the_call_id() -> None:
    reply = edge.handle(call(b'{"hello": 1}'), lambda: deps({}))
    assert (reply.status, answer(reply)["error"]["code"]) == (400, "bad_event")
    body = answer(reply)
    assert body["call_id"] == "C" and body["error"]["code"] == "bad_event" and body["error"]["message"]

    def no_config() -> Deps:
        raise ConfigError("LOG_LEVEL: 'LOUD' is not a log level")

    reply = edge.handle(call(CAT, {"content-type": "image/jpeg"}), no_config)
    assert reply.status == 500 and answer(reply)["error"] == {
        "code": "config_error",
        "message": "LOG_LEVEL: 'LOUD' is not a log level",
    }


def test_an_unexpected_exception_is_a_500_internal_error() -> None:
    d = deps({}, FakePredictor(fail=KeyError("a bug")))
    reply = edge.handle(call(CAT, {"content-type": "image/jpeg"}), lambda: d)
    assert (reply.status, answer(reply)["error"]["code"]) == (500, "internal_error")
    assert answer(reply) == {
        "error": {"code": "internal_error", "message": "unexpected KeyError; see the log of this call"},
        "call_id": "C",
    }


def test_the_request_is_parsed_with_the_settings_limits_and_results_area() -> None:
    settings = {"max_images": 1, "input_bucket": "images", "results_bucket": "images", "results_prefix": "out/"}
    d = deps({("images", "a.jpg"): CAT}, **settings)
    refused = edge.handle(call(json.dumps({"bucket": "images", "key": "out/r.json"}).encode()), lambda: d)
    assert (refused.status, answer(refused)["error"]["code"]) == (422, "refused_source")
    event = answer(edge.handle(call(records("out/r.json", "a.jpg")), lambda: d))
    assert [p["key"] for p in event["predictions"]] == ["a.jpg"]
    assert event["ignored"] == [
        {"reason": "results_location", "event_type": "ObjectCreated:Put", "detail": "images/out/r.json"}
    ]
    two = json.dumps([{"bucket": "images", "key": "a.jpg"}, {"bucket": "images", "key": "b.jpg"}]).encode()
    assert answer(edge.handle(call(two), lambda: d))["error"]["code"] == "too_many_images"
    bare = answer(edge.handle(call(json.dumps({"key": "a.jpg"}).encode()), lambda: d))  # INPUT_BUCKET
    assert bare["predictions"][0]["bucket"] == "images" and bare["predictions"][0]["status"] == "ok"


def test_the_cold_call_reports_what_starting_cost() -> None:
    d = replace(deps({}), init_ms=12.5)
    cold = answer(edge.handle(call(CAT, {"content-type": "image/jpeg"}, cold=True), lambda: d))
    hot = answer(edge.handle(call(CAT, {"content-type": "image/jpeg"}), lambda: d))
    assert cold["cold_start"] is True and cold["timings"]["init_ms"] == 12.5
    assert hot["cold_start"] is False and "init_ms" not in hot["timings"]
