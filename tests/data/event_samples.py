"""The event samples of `tests/data/events/` (where each came from: its README.md), and the helpers the
preprocess event tests share.

A `.json` sample is a request body sent as `application/json`; a `.http` sample is a whole HTTP request
(request line, headers, a blank line, the body) kept where the headers matter (SNS sends `text/plain`,
CloudEvents binary mode puts the event in `ce-*` headers) or where it was recorded with them.
`Content-Length` in a `.http` file is what was recorded, and is not checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from preprocess_core.errors import BadEventError
from preprocess_core.events import BODY_FORMATS, JSON_FORMATS, parse_request
from preprocess_core.inputs import Context, Ignored, Input, ParsedRequest

EVENTS = Path(__file__).resolve().parent / "events"
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Sample:
    """One sample file: the body and the lower-cased headers preprocess's `func.py` would pass on."""

    name: str
    body: bytes = field(repr=False)
    headers: dict[str, str]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def parse(self, **kw: Any) -> ParsedRequest:
        """`parse_request` on this sample."""
        return parse_request(self.body, self.headers, **kw)


def names() -> list[str]:
    """Every sample file."""
    return sorted(p.name for p in EVENTS.iterdir() if p.suffix in {".json", ".http"})


def load(name: str) -> Sample:
    """A sample by file name."""
    raw = (EVENTS / name).read_bytes()
    if name.endswith(".json"):
        return Sample(name, raw, dict(JSON))
    cut = min(i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0)
    head, body = raw[:cut].decode(), raw[cut:].lstrip(b"\r\n")
    headers = {}
    for line in head.splitlines()[1:]:  # after the request line
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Sample(name, body, headers)


def load_json(name: str) -> dict[str, Any]:
    """A `.json` sample's body as a JSON object, to build variants from."""
    data: dict[str, Any] = load(name).json()
    return data


def claimed_by(sample: Sample) -> str:
    """The name of the format (row of `BODY_FORMATS` / `JSON_FORMATS`) that recognises the sample."""
    ctx = Context(headers=sample.headers)
    for fmt in BODY_FORMATS:
        if fmt.recognise(sample.body, ctx) is not None:
            return fmt.name
    payload = sample.json()
    if isinstance(payload, list):
        return "list"
    for fmt in JSON_FORMATS:
        if fmt.recognise(payload, ctx) is not None:
            return fmt.name
    raise AssertionError(f"{sample.name}: no format claims it")


@dataclass(frozen=True)
class Expect:
    """What a sample parses to: which format claims it, what it finds, in order, and `from_event`."""

    format: str
    found: list[Input | Ignored]
    from_event: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for `parse_request` (`default_bucket`, `max_images`)."""


def check_samples(table: dict[str, Expect], formats: set[str]) -> None:
    """Every sample claimed by one of `formats` has a row in `table`, and none is missing a file."""
    claimed = {name for name in names() if claimed_by(load(name)) in formats}
    assert claimed == set(table), f"samples without a row: {claimed - set(table)}; rows without a file: " + str(
        set(table) - claimed
    )


def check_sample(name: str, expect: Expect) -> None:
    """The sample is claimed by the expected format and parses to exactly what is expected."""
    sample = load(name)
    assert claimed_by(sample) == expect.format
    req = sample.parse(**expect.options)
    assert req.inputs == [item for item in expect.found if not isinstance(item, Ignored)]
    assert req.ignored == [item for item in expect.found if isinstance(item, Ignored)]
    assert req.from_event is expect.from_event


def parse(payload: Any, headers: dict[str, str] | None = None, **kw: Any) -> ParsedRequest:
    """`parse_request` on a JSON value (or raw bytes), sent as `application/json` unless told."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_request(body, headers if headers is not None else JSON, **kw)


def assert_bad_event(payload: Any) -> None:
    """The payload is refused as 400 `bad_event` with a message, never a crash."""
    with pytest.raises(BadEventError) as err:
        parse(payload)
    assert err.value.status == 400 and err.value.code == "bad_event" and err.value.message


def s3_event(key: str, *, source: str = "aws:s3", name: str = "ObjectCreated:Put", escape_slash: bool = False):
    """`s3-put.json` for bucket `images` and `key`, encoded as the source encodes keys."""
    event = load_json("s3-put.json")
    record = event["Records"][0]
    record["eventSource"] = source
    record["eventName"] = name
    record["s3"]["bucket"]["name"] = "images"
    # AWS: form encoding, '/' kept; MinIO/moto: QueryEscape, '/' -> %2F.
    record["s3"]["object"]["key"] = quote_plus(key, safe="" if escape_slash else "/")
    record["s3"]["object"].pop("urlDecodedKey", None)
    return event


def sns(message: Any) -> dict[str, Any]:
    """An SNS HTTP notification carrying `message` as a JSON string."""
    return {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Message": json.dumps(message),
        "Timestamp": "2024-01-01T00:00:00.000Z",
    }
