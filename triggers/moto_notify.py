"""The AWS notification path, locally: moto S3 → SNS (http) or SQS → preprocess.

For tests only (moto is a dev dependency): the S3 `Records` that reach preprocess are produced by
moto's S3 notification code, not written by us. Facts (local-infra.md §1.6): moto POSTs to an SNS
`http` subscriber synchronously inside the S3 PUT and swallows errors (no retry); the SNS envelope
is `{"Type": "Notification", "Message": "<JSON string>", ...}` sent as `text/plain`; the first
message after configuring a bucket is an `s3:TestEvent` without `Records`; keys are `quote_plus`
encoded including `/` (`in%2Fcat.jpg`); a multipart upload gives two events.

* `MotoServer`: `ThreadedMotoServer` on 127.0.0.1 and a free port; `.client("s3" | "sns" | "sqs")`.
* `SnsForwarder`: the `http` subscriber. Confirms a subscription if asked (GET `SubscribeURL`), and
  forwards each envelope **unchanged** to preprocess through an `Invoker`.
* `connect_s3_to_sns` / `connect_s3_to_sqs`: bucket + topic/queue + notification configuration.
* `SqsPoller`: receives messages, forwards each body unchanged, deletes it once delivered.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from triggers import loopback
from triggers.events import JSON
from triggers.invoker import InvokeError, Invoker

log = logging.getLogger(__name__)

REGION = "us-east-1"
CREATED = ["s3:ObjectCreated:*"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """moto's S3/SNS/SQS on loopback, in this process (state is shared by every moto in it)."""

    port: int = 0
    _server: Any = field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self.port = self.port or _free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for this server (moto accepts any credentials)."""
        import boto3

        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing")

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect_s3_to_sns(moto: MotoServer, bucket: str, endpoint: str, topic: str | None = None) -> str:
    """Create `bucket` and a topic with an `http` subscription to `endpoint`; S3 → SNS. Returns the ARN."""
    s3, sns = moto.client("s3"), moto.client("sns")
    s3.create_bucket(Bucket=bucket)
    arn = str(sns.create_topic(Name=topic or f"{bucket}-events")["TopicArn"])
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "TopicConfigurations": [{"Id": "fn-vision", "TopicArn": arn, "Events": CREATED}]})
    return arn


def connect_s3_to_sqs(moto: MotoServer, bucket: str, queue: str | None = None) -> str:
    """Create `bucket` and a queue; S3 → SQS. Returns the queue URL."""
    s3, sqs = moto.client("s3"), moto.client("sqs")
    s3.create_bucket(Bucket=bucket)
    url = str(sqs.create_queue(QueueName=queue or f"{bucket}-events")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "fn-vision", "QueueArn": arn, "Events": CREATED}]})
    return url


@dataclass
class SnsForwarder:
    """HTTP endpoint for an SNS `http(s)` subscription; forwards envelopes unchanged."""

    invoker: Invoker
    received: list[dict[str, Any]] = field(default_factory=list)
    forwarded: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/sns"

    def handle(self, body: bytes) -> int:
        """Process one SNS POST; returns the HTTP status to answer."""
        try:
            envelope = json.loads(body)
        except ValueError:
            return 400
        with self._lock:
            self.received.append(envelope)
        kind = envelope.get("Type")
        if kind == "SubscriptionConfirmation" and envelope.get("SubscribeURL"):
            with urllib.request.urlopen(envelope["SubscribeURL"], timeout=10) as answer:  # noqa: S310
                answer.read()
            return 200
        if kind != "Notification":
            return 200
        try:
            self.invoker.invoke(body, JSON)
        except InvokeError as exc:
            log.warning("sns forwarder: not delivered: %s", exc)
            return 503
        with self._lock:
            self.forwarded += 1
        return 200

    def start(self) -> SnsForwarder:
        forwarder = self

        class Handler(loopback.Handler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                self.answer(forwarder.handle(self.read_body()))

        self._server = loopback.serve(Handler, "sns-forwarder")
        return self

    def stop(self) -> None:
        loopback.close(self._server)
        self._server = None

    def __enter__(self) -> SnsForwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SqsPoller:
    """Receive S3 notifications from a queue and forward each body unchanged to preprocess."""

    sqs: Any
    queue_url: str
    invoker: Invoker
    wait_s: int = 1
    forwarded: int = 0

    def poll_once(self) -> int:
        """Receive up to 10 messages; forward, then delete the delivered ones. Returns how many."""
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=self.wait_s)
        done = 0
        for message in answer.get("Messages", []):
            try:
                self.invoker.invoke(message["Body"].encode(), JSON)
            except InvokeError as exc:  # stays in the queue, visible again after the timeout
                log.warning("sqs poller: not delivered: %s", exc)
                continue
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            done += 1
        self.forwarded += done
        return done

    def run(self, stop_event: threading.Event) -> None:
        """Poll until `stop_event` is set."""
        while not stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("sqs poller: receive failed")
                stop_event.wait(1.0)
