"""A stand-in for preprocess+predict: a loopback HTTP endpoint that records result documents.

For tests and benchmarks of the event sources while (or without) running the real functions. It
reads bodies with preprocess's own parser (`parse_refs`), writes one result document per object at
`result_key(...)` with `PutObject(IfNoneMatch="*")` (412 = already there, as predict does) and
keeps every request it received so a test can count deliveries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import result_key
from fnvision_common.s3client import is_precondition_failed, normalise_etag

from triggers import loopback


def parse_refs(body: bytes, headers: Mapping[str, str]) -> list[ObjectRef]:
    """Object references in a request body, as preprocess's own parser reads them.

    The fake has no event parser of its own (it must not become a second source of truth): it uses
    `preprocess_core.events.parse_request`, so `functions/preprocess` must be on `sys.path` (pytest's
    `pythonpath` puts it there, as the image's PYTHONPATH does). Raises preprocess's BadEventError.
    """
    from preprocess_core.events import parse_request

    request = parse_request(body, {k.lower(): v for k, v in headers.items()}, max_images=100_000)
    # the version alone (ETag normalised), not what the event said: it compares with what was sent
    return [ObjectRef(item.bucket, item.key, normalise_etag(item.etag), item.size)
            for item in request.inputs if isinstance(item, ObjectRef)]


@dataclass
class FakePreprocess:
    """Loopback endpoint; use as a context manager, POST to `.url`."""

    client: Any
    results_bucket: str = "results"
    results_prefix: str = ""
    model_name: str = "fake-model"
    model_version: str = "0.0.0"
    fail_status: Callable[[list[ObjectRef]], int | None] | None = None
    """Optional hook: return a status to answer instead of processing (to simulate failures)."""
    delay_s: float = 0.0
    """Time each request takes before it is processed (to simulate model work)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    created: list[ObjectRef] = field(default_factory=list)
    existed: list[ObjectRef] = field(default_factory=list)
    inflight: int = 0
    """Requests being handled right now."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/invoke/preprocess"

    def refs_received(self) -> list[ObjectRef]:
        """Every object reference received, duplicates included."""
        with self._lock:
            return [ref for req in self.requests for ref in req["refs"]]

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Process one request body; returns (status, JSON answer)."""
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"error": {"code": "invalid_json", "message": "body is not JSON"}}
        try:
            refs = parse_refs(body, headers)
        except Exception as exc:  # preprocess's BadEventError: it answers 400 too
            return 400, {"error": {"code": "bad_event", "message": str(exc)}}
        with self._lock:
            self.requests.append({"headers": headers, "event": event, "refs": refs})
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_status is not None:
            status = self.fail_status(refs)
            if status is not None:
                return status, {"error": {"code": "simulated", "message": f"simulated {status}"}}
        answers = []
        for ref in refs:
            etag = ref.etag or normalise_etag(
                self.client.head_object(Bucket=ref.bucket, Key=ref.key)["ETag"])
            key = result_key(self.results_prefix, ref.bucket, ref.key, etag,
                             self.model_name, self.model_version)
            source = {"bucket": ref.bucket, "key": ref.key, "etag": etag}
            doc = {"schema": "fn-vision/result@1", "source": source}
            try:
                self.client.put_object(Bucket=self.results_bucket, Key=key, IfNoneMatch="*",
                                       Body=json.dumps(doc).encode(), ContentType="application/json")
                status_word = "created"
                with self._lock:
                    self.created.append(ref)
            except Exception as exc:
                if not is_precondition_failed(exc):
                    raise
                status_word = "exists"
                with self._lock:
                    self.existed.append(ref)
            answers.append({"result": {"bucket": self.results_bucket, "key": key, "status": status_word}})
        return 200, {"predictions": answers}

    def start(self) -> FakePreprocess:
        fake = self

        class Handler(loopback.Handler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.read_body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                detached = headers.get("fn-invoke-type") == "detached"
                with fake._lock:
                    fake.inflight += 1
                try:
                    status, answer = fake.handle(body, headers)
                except Exception as exc:  # a storage error: Fn would answer 502
                    status, answer = 502, {"error": {"code": "storage_error", "message": str(exc)}}
                finally:
                    with fake._lock:
                        fake.inflight -= 1
                if detached and status < 300:
                    self.answer(202, b"", [("Content-Type", "application/json")])
                else:
                    self.answer(status, json.dumps(answer).encode(), [("Content-Type", "application/json")])

        self._server = loopback.serve(Handler, "fake-preprocess", poll_s=0.05)
        return self

    def stop(self) -> None:
        loopback.close(self._server)
        self._server = None

    def __enter__(self) -> FakePreprocess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
