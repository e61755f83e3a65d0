"""moto's real S3 notifications (S3 → SNS http, S3 → SQS) reach preprocess's own parser intact.

The bodies are produced by moto's notification code, forwarded unchanged by `SnsForwarder` /
`SqsPoller`, and read here with `preprocess_core.events.parse_request`, the parser the function
runs: the keys (space, `+`, unicode, `%`, and `/`, which moto encodes as `%2F`) and ETags must come out
exactly as uploaded. `tests/e2e/test_moto_e2e.py` sends them through the real functions.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from preprocess_core.events import ObjectRef, ParsedRequest, parse_request

from triggers.invoker import InvokeResult
from triggers.moto_notify import MotoServer, SnsForwarder, SqsPoller, connect_s3_to_sns, connect_s3_to_sqs

pytestmark = pytest.mark.integration
KEYS = ["plain.jpg", "in/with space.jpg", "a+b/c+d.jpg", "été/日本 photo.jpg", "100% done/x.jpg"]


class Capture:
    """An Invoker that keeps each (body, content type) it is given and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()

    def invoke(self, body: bytes, content_type: str, detached: bool = False) -> InvokeResult:
        with self._lock:
            self.calls.append((body, content_type))
        return InvokeResult(200, b"{}")

    def parsed(self) -> list[ParsedRequest]:
        return [parse_request(body, {"content-type": ct}) for body, ct in self.calls]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _objects(requests: list[ParsedRequest]) -> list[tuple[str, str, str]]:
    return [(i.bucket, i.key, i.etag.strip('"')) for r in requests for i in r.inputs if isinstance(i, ObjectRef)]


def test_s3_to_sns_http_records_parse_to_the_uploaded_objects(moto: MotoServer) -> None:
    s3 = moto.client("s3")
    capture = Capture()
    with SnsForwarder(capture) as forwarder:
        bucket = _name("images")
        connect_s3_to_sns(moto, bucket, forwarder.url)
        etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"].strip('"') for k in KEYS}
        # moto posts synchronously inside the PUT: everything has arrived by now
    assert [json.loads(body) for body, _ in capture.calls] == forwarder.received  # forwarded unchanged
    raw_keys = [json.loads(json.loads(body)["Message"]).get("Records", [{}])[0].get("s3", {}).get("object", {})
                .get("key") for body, _ in capture.calls]
    assert "a%2Bb%2Fc%2Bd.jpg" in raw_keys  # moto encodes `/` too: the parser must undo exactly that

    requests = capture.parsed()
    assert all(r.from_event for r in requests)
    test_event, *uploads = requests
    assert test_event.inputs == [] and [i.reason for i in test_event.ignored] == ["test_event"]
    assert _objects(uploads) == [(bucket, k, etags[k]) for k in KEYS]
    refs = [i for r in uploads for i in r.inputs]
    assert all(isinstance(i, ObjectRef) and i.origin == "aws" and i.event_type == "ObjectCreated:Put"
               for i in refs)
    assert [i.size for i in refs if isinstance(i, ObjectRef)] == [len(k.encode()) for k in KEYS]


def test_s3_to_sqs_bodies_parse_to_the_uploaded_objects(moto: MotoServer) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    bucket = _name("images")
    queue = connect_s3_to_sqs(moto, bucket)
    capture = Capture()
    poller = SqsPoller(sqs, queue, capture, wait_s=0)
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"].strip('"') for k in KEYS}
    while poller.poll_once():
        pass
    requests = capture.parsed()
    assert [i.reason for r in requests for i in r.ignored] == ["test_event"]
    assert sorted(_objects(requests)) == sorted((bucket, k, etags[k]) for k in KEYS)
    assert poller.poll_once() == 0  # delivered messages were deleted
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
                                    )["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_multipart_upload_gives_one_object_with_the_multipart_etag(moto: MotoServer) -> None:
    s3 = moto.client("s3")
    capture = Capture()
    with SnsForwarder(capture) as forwarder:
        bucket = _name("images")
        connect_s3_to_sns(moto, bucket, forwarder.url)
        key = "big/multi part+.bin"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                                                          Body=bytes([n]) * (5 * 1024 * 1024))["ETag"]}
                 for n in (1, 2)]
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    objects = set(_objects(capture.parsed()))
    assert objects == {(bucket, key, etag)} and etag.endswith("-2")
