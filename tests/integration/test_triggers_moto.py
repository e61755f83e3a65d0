"""moto's real S3 notifications (S3 → SNS http, S3 → SQS) reach a local receiver and preprocess."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from triggers.fakefn import FakePreprocess
from triggers.invoker import HttpInvoker
from triggers.moto_notify import MotoServer, SnsForwarder, SqsPoller, connect_s3_to_sns, connect_s3_to_sqs

pytestmark = pytest.mark.integration
KEYS = ["plain.jpg", "in/with space.jpg", "a+b/c+d.jpg", "été/日本 photo.jpg"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_s3_to_sns_http_delivers_real_records(moto: MotoServer) -> None:
    s3 = moto.client("s3")
    results = _name("results")
    s3.create_bucket(Bucket=results)
    with FakePreprocess(s3, results_bucket=results) as fake, \
            SnsForwarder(HttpInvoker(fake.url, backoff_s=0.01)) as forwarder:
        bucket = _name("images")
        connect_s3_to_sns(moto, bucket, forwarder.url)
        etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"].strip('"') for k in KEYS}
        # moto posts synchronously inside the PUT: everything has arrived by now
        envelopes = [r["event"] for r in fake.requests]
        assert all(e["Type"] == "Notification" for e in envelopes)
        assert envelopes == forwarder.received  # forwarded unchanged
        messages = [json.loads(e["Message"]) for e in envelopes]
        assert messages[0]["Event"] == "s3:TestEvent"
        records = [m["Records"][0] for m in messages[1:]]
        assert [r["eventName"] for r in records] == ["ObjectCreated:Put"] * len(KEYS)
        assert "a%2Bb%2Fc%2Bd.jpg" in [r["s3"]["object"]["key"] for r in records]  # moto encodes `/` too
        got = {r.key: r.etag for r in fake.refs_received()}
        assert got == etags
        assert {r.key for r in fake.created} == set(KEYS)


def test_s3_to_sqs_poller_forwards_bodies(moto: MotoServer) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    results = _name("results")
    s3.create_bucket(Bucket=results)
    bucket = _name("images")
    queue = connect_s3_to_sqs(moto, bucket)
    with FakePreprocess(s3, results_bucket=results) as fake:
        poller = SqsPoller(sqs, queue, HttpInvoker(fake.url, backoff_s=0.01), wait_s=0)
        etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"].strip('"') for k in KEYS}
        while poller.poll_once():
            pass
        bodies = [r["event"] for r in fake.requests]
        assert bodies[0]["Event"] == "s3:TestEvent"
        assert {r.key: r.etag for r in fake.refs_received()} == etags
        assert all(b["Records"][0]["eventSource"] == "aws:s3" for b in bodies[1:])
        assert poller.poll_once() == 0  # delivered messages were deleted
        assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
                                        )["Attributes"]["ApproximateNumberOfMessages"] == "0"
