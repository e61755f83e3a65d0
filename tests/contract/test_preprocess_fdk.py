"""preprocess through the real fdk process on a unix socket, in /invoke and HTTP-trigger mode.

predict is replaced by a loopback HTTP server that decodes the OIP v2 binary request, so these
tests check exactly what preprocess sends and answers, without the model.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.data import preprocess_images as gen
from tests.fdkproc import FdkProcess

FUNC = Path(__file__).resolve().parents[2] / "functions" / "preprocess" / "func.py"


class FakePredict:
    """Records OIP v2 binary requests; answers like predict (OIP with parameters.fnvision)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                n = int(self.headers["Inference-Header-Content-Length"])
                header = json.loads(body[:n])
                shape = header["inputs"][0]["shape"]
                tensor = np.frombuffer(body[n:], np.uint8).reshape(shape)
                owner.requests.append(
                    {"header": header, "tensor": tensor, "headers": dict(self.headers), "bytes": len(body)}
                )
                sources = json.loads(header["parameters"]["sources"])
                preds = [{"top_k": [{"index": 281, "label": "tabby", "score": 0.9}]} for _ in sources]
                native = {"model": {"name": "fake", "version": "0"}, "predictions": preds}
                out = json.dumps(
                    {"model_name": "fake", "outputs": [], "parameters": {"fnvision": json.dumps(native)}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/invoke/predict"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def predict() -> Iterator[FakePredict]:
    fake = FakePredict()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def fn(predict: FakePredict) -> Iterator[FdkProcess]:
    env = {
        "PREDICT_URL": predict.url,
        "MODEL_INPUT_SIZE": "224",  # no dependency on `make model` (model_manifest.json)
        "LOG_LEVEL": "INFO",
        "AUTH_TOKEN": "",
        "PREDICT_ATTEMPTS": "2",
        "PREDICT_BACKOFF": "0.01",
    }
    with FdkProcess(FUNC, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def fn_down() -> Iterator[FdkProcess]:
    env = {
        "PREDICT_URL": f"http://127.0.0.1:{closed_port()}/",
        "MODEL_INPUT_SIZE": "224",
        "PREDICT_ATTEMPTS": "2",
        "PREDICT_BACKOFF": "0.01",
        "AUTH_TOKEN": "tok",
    }
    with FdkProcess(FUNC, env=env) as proc:
        yield proc


JPEG = gen.encode(gen.chelsea(), "JPEG", quality=90)


@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_raw_upload_sends_one_binary_oip_request(fn: FdkProcess, predict: FakePredict, gateway: bool) -> None:
    before = len(predict.requests)
    reply = fn.call(JPEG, {"Content-Type": "image/jpeg", "X-Filename": "cat.jpg"}, call_id="CALL-RAW", gateway=gateway)
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["predictions"][0]["upload"] == "cat.jpg" and body["predictions"][0]["top_k"][0]["index"] == 281
    assert body["call_id"] == "CALL-RAW"
    (req,) = predict.requests[before:]
    assert req["tensor"].shape == (1, 224, 224, 3) and req["header"]["inputs"][0]["datatype"] == "UINT8"
    assert req["headers"]["X-Parent-Call-Id"] == "CALL-RAW"
    assert req["bytes"] < 224 * 224 * 3 + 4096  # binary, not float32 JSON
    if gateway:
        assert reply.headers["fn-http-status"] == "200"


def test_multipart_several_images_one_predict_call(fn: FdkProcess, predict: FakePredict) -> None:
    request = httpx.Request(
        "POST",
        "http://x/t/vision/classify",
        files=[("image", ("a.jpg", JPEG, "image/jpeg")), ("image", ("b.webp", gen.webp(), "image/webp"))],
    )
    before = len(predict.requests)
    reply = fn.call(request.read(), {"Content-Type": request.headers["content-type"]}, gateway=True)
    assert reply.http_status == 200
    assert [p["upload"] for p in reply.json()["predictions"]] == ["a.jpg", "b.webp"]
    assert len(predict.requests) - before == 1 and predict.requests[-1]["tensor"].shape[0] == 2


ERRORS = {
    "bad_json": (b"{not json", {"Content-Type": "application/json"}, "bad_event", 400),
    "unknown_payload": (b'{"hello": 1}', {"Content-Type": "application/json"}, "bad_event", 400),
    "not_an_image": (b"plain text pretending", {"Content-Type": "image/jpeg"}, "not_an_image", 415),
    "zero_bytes_upload": (b"", {"Content-Type": "image/png"}, "not_an_image", 415),
    "empty_json": (b"", {"Content-Type": "application/json"}, "bad_event", 400),
    "truncated": (gen.truncated_jpeg(), {"Content-Type": "image/jpeg"}, "corrupt_image", 415),
    "bomb": (gen.png_header_bomb(), {"Content-Type": "image/png"}, "image_too_large", 413),
    "loopback_url": (b'{"url": "http://127.0.0.1:9/x.jpg"}', {"Content-Type": "application/json"}, "refused_url", 422),
    "metadata_url": (
        b'{"url": "http://169.254.169.254/latest/"}',
        {"Content-Type": "application/json"},
        "refused_url",
        422,
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_client_errors_keep_their_body(fn: FdkProcess, case: str, gateway: bool) -> None:
    body, headers, code, status = ERRORS[case]
    reply = fn.call(body, headers, gateway=gateway)
    assert reply.status == 200  # the body survives the agent in both modes
    assert reply.json()["error"]["code"] == code and reply.json()["error"]["message"]
    if gateway:
        assert reply.headers["fn-http-status"] == str(status)
    else:
        assert "fn-http-status" not in reply.headers
    assert fn.alive()


def test_test_event_and_delete_are_acknowledged(fn: FdkProcess) -> None:
    reply = fn.call(
        b'{"Event": "s3:TestEvent", "Service": "Amazon S3"}', {"Content-Type": "application/json"}, gateway=True
    )
    assert reply.http_status == 200 and reply.json()["ignored"][0]["reason"] == "test_event"


def test_liveness_probe(fn: FdkProcess) -> None:
    reply = fn.call(b"", {}, gateway=True, method="HEAD")
    assert reply.http_status == 200 and reply.json()["ok"] is True


def test_json_logs_carry_the_call_id(fn: FdkProcess) -> None:
    fn.call(JPEG, {"Content-Type": "image/jpeg"}, call_id="CALL-LOGS")
    lines = [json.loads(line) for line in fn.stderr().splitlines() if line.startswith("{")]
    done = [e for e in lines if e.get("msg") == "preprocess done" and e.get("call_id") == "CALL-LOGS"]
    assert done and done[0]["fn"] == "preprocess" and done[0]["images"] == 1


def test_predict_down_is_502_after_retries(fn_down: FdkProcess) -> None:
    auth = {"Content-Type": "image/jpeg", "Authorization": "Bearer tok"}
    reply = fn_down.call(JPEG, auth, gateway=True)
    assert reply.status == 200 and reply.http_status == 502
    assert reply.json()["error"]["code"] == "predict_unavailable"
    # /invoke: a server-side failure is a failed Fn call (wire 502), as predict does.
    invoke = fn_down.call(JPEG, {"Content-Type": "image/jpeg"})
    assert invoke.status == 502 and invoke.json()["error"]["code"] == "predict_unavailable"


def test_auth_token_on_trigger_calls(fn_down: FdkProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        reply = fn_down.call(
            b'{"Event": "s3:TestEvent"}', {"Content-Type": "application/json", **headers}, gateway=True
        )
        assert reply.http_status == 401 and reply.json()["error"]["code"] == "unauthorized"
    ok = fn_down.call(
        b'{"Event": "s3:TestEvent"}', {"Content-Type": "application/json", "Authorization": "Bearer tok"}, gateway=True
    )
    assert ok.http_status == 200
    # fn invoke is authenticated by the platform: no token needed.
    assert fn_down.call(b'{"Event": "s3:TestEvent"}', {"Content-Type": "application/json"}).status == 200


def test_binary_cloudevent_through_a_trigger(fn: FdkProcess, predict: FakePredict) -> None:
    # Trigger mode wraps the ce-* headers as Fn-Http-H-Ce-*; the fdk unwraps them for the handler.
    headers = {"Content-Type": "image/jpeg", "Ce-Specversion": "1.0", "Ce-Type": "com.example.upload", "Ce-Id": "e-1"}
    headers["Ce-Subject"] = "photos/cat.jpg"
    reply = fn.call(JPEG, headers, gateway=True)
    assert reply.http_status == 200, reply.body[:300]
    assert reply.json()["predictions"][0]["upload"] == "photos/cat.jpg"


def test_sns_text_plain_delivery_of_a_delete_is_acknowledged(fn: FdkProcess) -> None:
    message = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}},
            }
        ]
    }
    envelope = {"Type": "Notification", "MessageId": "1", "TopicArn": "arn:t", "Message": json.dumps(message)}
    reply = fn.call(json.dumps(envelope).encode(), {"Content-Type": "text/plain; charset=UTF-8"}, gateway=True)
    assert reply.http_status == 200 and reply.json()["ignored"] == [
        {"reason": "not_a_create_event", "event_type": "ObjectRemoved:Delete"}
    ]
