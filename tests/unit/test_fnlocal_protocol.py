"""The Fn agent's wire rules in fnlocal.protocol, checked against fn-contract.md §2.3, §2.5, §2.8."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fnlocal import protocol


def test_call_ids_are_ulid_shaped_unique_and_time_ordered() -> None:
    ids = [protocol.new_call_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 26 and set(i) <= set(protocol._CROCKFORD) for i in ids)
    assert ids[0][:10] <= ids[-1][:10]  # 48-bit millisecond prefix


def test_deadline_is_rfc3339_seconds_utc() -> None:
    now = datetime(2030, 1, 1, 0, 0, 0, 400000, tzinfo=UTC)
    assert protocol.deadline_header(30, now) == "2030-01-01T00:00:30Z"
    assert datetime.fromisoformat(protocol.deadline_header(5)) > datetime.now(UTC)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("fn-http-h-x-custom", "Fn-Http-H-X-Custom"), ("CONTENT-TYPE", "Content-Type"), ("etag", "Etag")],
)
def test_canonical_header_names_like_go(name: str, canonical: str) -> None:
    assert protocol.canonical(name) == canonical


def test_hop_headers_are_stripped() -> None:
    headers = [("Connection", "keep-alive"), ("Transfer-Encoding", "chunked"), ("Host", "x"),
               ("Content-Length", "3"), ("Keep-Alive", "5"), ("x-a", "1"), ("Accept", "*/*")]
    assert protocol.strip_hop(headers) == [("X-A", "1"), ("Accept", "*/*")]


def test_call_headers_are_the_inbound_ones_plus_the_agent_s_id_and_deadline() -> None:
    """§2.3: all inbound headers but hop-by-hop ones; a client's Fn-Call-Id / Fn-Deadline are replaced."""
    inbound = [("Content-Type", "image/jpeg"), ("fn-call-id", "FROM-CLIENT"), ("Fn-Deadline", "1999-01-01T00:00:00Z"),
               ("Transfer-Encoding", "chunked"), ("x-parent-call-id", "P")]
    out = protocol.call_headers(inbound, "01AGENT", 30)
    assert out[:2] == [("Content-Type", "image/jpeg"), ("X-Parent-Call-Id", "P")]
    assert out[2] == ("Fn-Call-Id", "01AGENT") and out[3][0] == "Fn-Deadline" and len(out) == 4
    assert datetime.fromisoformat(out[3][1]) > datetime.now(UTC)


def test_trigger_request_rewrite_matches_fn_table() -> None:
    """§2.8: every header -> Fn-Http-H-*, except Content-Type; plus method, URL and intent."""
    client = [("Host", "localhost:8080"), ("User-Agent", "curl/8.0"), ("Accept", "*/*"),
              ("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b"),
              ("Connection", "close")]
    out = protocol.trigger_request_headers(client, "post", "http://localhost:8080/t/app/src?x=1")
    assert out == [
        ("Fn-Http-H-User-Agent", "curl/8.0"),
        ("Fn-Http-H-Accept", "*/*"),
        ("Content-Type", "application/json"),
        ("Fn-Http-H-X-Multi", "a"),
        ("Fn-Http-H-X-Multi", "b"),
        ("Fn-Http-Method", "POST"),
        ("Fn-Http-Request-Url", "http://localhost:8080/t/app/src?x=1"),
        ("Fn-Intent", "httprequest"),
    ]


def test_trigger_response_keeps_only_prefixed_content_type_and_call_id() -> None:
    fdk = [("content-type", "application/json"), ("fn-http-h-x-custom", "abc"), ("fn-http-status", "201"),
           ("fn-fdk-version", "fdk-python/0.1.128"), ("fn-fdk-runtime", "python/3.11"),
           ("x-unprefixed", "dropped"), ("Fn-Call-Id", "01ABC")]
    status, headers = protocol.trigger_response(200, fdk)
    assert status == 201
    assert headers == [("Content-Type", "application/json"), ("X-Custom", "abc"), ("Fn-Call-Id", "01ABC")]


@pytest.mark.parametrize(
    ("service", "fn_status", "expected"),
    [(200, None, 200), (200, "404", 404), (200, "junk", 200), (502, "200", 502), (504, None, 504)],
)
def test_trigger_status_rule(service: int, fn_status: str | None, expected: int) -> None:
    headers = [] if fn_status is None else [("Fn-Http-Status", fn_status)]
    assert protocol.trigger_response(service, headers)[0] == expected


@pytest.mark.parametrize(
    ("fdk_status", "client"),
    [(200, None), (502, (502, "function failed")), (504, (504, "Timed out")),
     (404, (502, "invalid function response")), (201, (502, "invalid function response"))],
)
def test_container_status_mapping(fdk_status: int, client: tuple[int, str] | None) -> None:
    err = protocol.map_container_status(fdk_status)
    assert (None if err is None else (err.status, err.message)) == client


def test_error_body_is_fn_json() -> None:
    err = protocol.FnError(404, protocol.MSG_APP_NOT_FOUND)
    assert err.body() == b'{"message":"App not found"}\n'  # Go's json.Encoder ends with a newline
    busy = protocol.FnError(503, protocol.MSG_BUSY)
    assert json.loads(busy.body()) == {"message": "Timed out - server too busy"}


def test_last_header_wins_like_the_fdk() -> None:
    assert protocol.header([("A", "1"), ("a", "2")], "A") == "2"
    assert protocol.header([], "A") is None
