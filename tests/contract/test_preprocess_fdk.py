"""preprocess through the real fdk process on a unix socket, in /invoke and HTTP-trigger mode.

predict is replaced by a loopback HTTP server that decodes the OIP v2 binary request, so these
tests check exactly what preprocess sends and answers, without the model.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from devstack.ports import free_port as closed_port
from tests.data import preprocess_images as gen
from tests.fdkproc import FdkProcess

FUNC = Path(__file__).resolve().parents[2] / "functions" / "preprocess" / "func.py"


class FakePredict:
    """Records OIP v2 binary requests; answers like predict (OIP with parameters.fnvision).

    With ``reject`` set it answers as predict does on /invoke for a client error: 200 + error body.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reject: str | None = None
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
                if owner.reject:
                    out = json.dumps({"error": {"code": owner.reject, "message": "rejected by the stub"}}).encode()
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
    "sns_not_an_object": (b'{"Records": [{"Sns": "x"}]}', {"Content-Type": "application/json"}, "bad_event", 400),
    "deep_nesting": (b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, "bad_event", 400),
    "filer_attributes_list": (
        b'{"event_type": "create", "key": "/buckets/b/k.jpg", "message": {"new_entry": {"attributes": []}}}',
        {"Content-Type": "application/json"},
        "bad_event",
        400,
    ),
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


# --- configuration errors and unexpected exceptions ----------------------------------------------


def test_invalid_log_level_is_a_config_error_not_a_crash(predict: FakePredict) -> None:
    env = {"PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": "224", "LOG_LEVEL": "LOUD"}
    with FdkProcess(FUNC, env=env) as proc:
        invoke = proc.call(JPEG, {"Content-Type": "image/jpeg"})
        assert invoke.status == 502  # server-side: Fn records a failed call
        error = invoke.json()["error"]
        assert error["code"] == "config_error" and "LOG_LEVEL" in error["message"]
        trigger = proc.call(JPEG, {"Content-Type": "image/jpeg"}, gateway=True)
        assert trigger.http_status == 500 and trigger.json()["error"]["code"] == "config_error"
        assert proc.alive()


def test_without_manifest_or_input_size_the_function_says_so(predict: FakePredict, tmp_path: Path) -> None:
    # A copy of the function folder without model_manifest.json (what `make model` writes).
    import shutil

    func_dir = tmp_path / "preprocess"
    shutil.copytree(FUNC.parent, func_dir, ignore=shutil.ignore_patterns("model_manifest.json", "__pycache__"))
    with FdkProcess(func_dir / "func.py", env={"PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": ""}) as proc:
        reply = proc.call(JPEG, {"Content-Type": "image/jpeg"}, gateway=True)
        assert reply.http_status == 500 and reply.json()["error"]["code"] == "config_error"
        assert "MODEL_INPUT_SIZE" in reply.json()["error"]["message"]
    if MANIFEST.exists():  # with the copy in place, the input size comes from predict's manifest
        shutil.copy(MANIFEST, func_dir / "model_manifest.json")
        with FdkProcess(func_dir / "func.py", env={"PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": ""}) as proc:
            before = len(predict.requests)
            assert proc.call(JPEG, {"Content-Type": "image/jpeg"}, gateway=True).http_status == 200
            size = json.loads(MANIFEST.read_text())["inputs"][0]["shape"][1]  # manifest v2
            assert predict.requests[before]["tensor"].shape == (1, size, size, 3)


def test_unexpected_exception_is_answered_as_internal_error(
    predict: FakePredict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import importlib.util

    from fdk import fixtures

    monkeypatch.setenv("PREDICT_URL", predict.url)
    monkeypatch.setenv("MODEL_INPUT_SIZE", "224")
    spec = importlib.util.spec_from_file_location("preprocess_func_catchall", FUNC)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(module.edge.service, "run", boom)
    monkeypatch.setattr(module.jsonlog, "configure", lambda *a, **k: None)  # keep pytest's logging as is

    async def call(gateway: bool) -> tuple[Any, int, Any]:
        coro = await fixtures.setup_fn_call(
            module.handler, content=io.BytesIO(JPEG), headers={"Content-Type": "image/jpeg"}, gateway=gateway
        )
        return await coro

    body, status, headers = asyncio.run(call(False))
    assert status == 502 and json.loads(body)["error"]["code"] == "internal_error"
    body, status, headers = asyncio.run(call(True))
    assert status == 200 and headers.get("fn-http-status") == "500"
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)  # traceback logged


# --- every storage-event door through the real process, with SeaweedFS ---------------------------

MANIFEST = FUNC.parents[1] / "predict" / "model" / "manifest.json"
ODD_KEY = "in/my cat+1 ü.jpg"


class ImageServer:
    """A loopback HTTP server with one image, for the URL doors."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body, status = (JPEG, 200) if self.path == "/cat.jpg" else (b"nope", 404)
                self.send_response(status)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def images_http() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fn_s3(predict: FakePredict, seaweed: Any) -> Iterator[FdkProcess]:
    env = {
        **seaweed.env(),
        "PREDICT_URL": predict.url,
        "MODEL_INPUT_SIZE": "224",
        "URL_ALLOW_HOSTS": "127.0.0.1",
        "RESULTS_BUCKET": "results",
        "PREDICT_ATTEMPTS": "1",
    }
    with FdkProcess(FUNC, env=env) as proc:
        yield proc


def _s3_records(bucket: str, key: str, etag: str, source: str = "minio:s3") -> dict[str, Any]:
    from urllib.parse import quote_plus

    record = {
        "eventSource": source,
        "eventName": "s3:ObjectCreated:Put",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe=""), "eTag": etag}},
    }
    return {"Records": [record]}


def _minio_webhook(bucket: str, key: str, etag: str) -> tuple[bytes, str]:
    event = {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}", **_s3_records(bucket, key, etag)}
    return json.dumps(event).encode(), "application/json"


def _minio_webhook_without_records(bucket: str, key: str, etag: str) -> tuple[bytes, str]:
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}"}).encode(), "application/json"


def _sqs_wrapped(bucket: str, key: str, etag: str) -> tuple[bytes, str]:
    records = _s3_records(bucket, key, etag, "aws:s3")
    message = {"messageId": "m-1", "receiptHandle": "r", "eventSource": "aws:sqs", "body": json.dumps(records)}
    return json.dumps({"Records": [message]}).encode(), "application/json"


def _sns_wrapped(bucket: str, key: str, etag: str) -> tuple[bytes, str]:
    records = _s3_records(bucket, key, etag, "aws:s3")
    envelope = {"Type": "Notification", "MessageId": "n-1", "TopicArn": "arn:t", "Message": json.dumps(records)}
    return json.dumps(envelope).encode(), "text/plain; charset=UTF-8"  # SNS HTTP subscriptions send text/plain


def _cloudevent_structured(bucket: str, key: str, etag: str) -> tuple[bytes, str]:
    event = {
        "specversion": "1.0",
        "type": "com.oraclecloud.objectstorage.createobject",
        "source": "/service/objectstorage",
        "id": "ce-1",
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"resourceName": key, "additionalDetails": {"bucketName": bucket, "eTag": etag}},
    }
    return json.dumps(event).encode(), "application/cloudevents+json"


DOORS = {
    "minio_webhook": (_minio_webhook, "minio"),
    "minio_webhook_without_records": (_minio_webhook_without_records, "minio"),
    "sqs_wrapped_records": (_sqs_wrapped, "aws"),
    "sns_wrapped_records": (_sns_wrapped, "aws"),
    "cloudevents_1_0_structured": (_cloudevent_structured, "cloudevent"),
}


@pytest.mark.parametrize("door", sorted(DOORS))
@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_storage_event_doors(
    fn_s3: FdkProcess, predict: FakePredict, s3: Any, new_bucket: Any, door: str, gateway: bool
) -> None:
    build, origin = DOORS[door]
    bucket = new_bucket("door")
    etag = s3.put_object(Bucket=bucket, Key=ODD_KEY, Body=JPEG)["ETag"].strip('"')
    body, ctype = build(bucket, ODD_KEY, etag)
    before = len(predict.requests)
    reply = fn_s3.call(body, {"Content-Type": ctype}, gateway=gateway)
    assert reply.status == 200 and reply.http_status == 200, reply.body[:500]
    (item,) = reply.json()["predictions"]
    assert (item["bucket"], item["key"], item["etag"], item["status"]) == (bucket, ODD_KEY, etag, "ok")
    assert item["top_k"][0]["index"] == 281
    (req,) = predict.requests[before:]
    (source,) = json.loads(req["header"]["parameters"]["sources"])
    assert (source["bucket"], source["key"], source["etag"]) == (bucket, ODD_KEY, etag)  # predict records it
    assert source["metadata"]["source"]["origin"] == origin
    assert req["tensor"].shape == (1, 224, 224, 3)


@pytest.mark.parametrize("payload", ["url", "classy"])
def test_url_doors_fetch_from_an_allow_listed_server(
    fn_s3: FdkProcess, fn: FdkProcess, images_http: ImageServer, predict: FakePredict, payload: str
) -> None:
    url = f"{images_http.url}/cat.jpg"
    body = json.dumps({"url": url} if payload == "url" else {"name": url}).encode()
    before = len(predict.requests)
    reply = fn_s3.call(body, {"Content-Type": "application/json"}, gateway=True)
    assert reply.http_status == 200, reply.body[:500]
    (item,) = reply.json()["predictions"]
    assert item["url"] == url and item["status"] == "ok" and item["top_k"][0]["index"] == 281
    (source,) = json.loads(predict.requests[before]["header"]["parameters"]["sources"])
    assert set(source) == {"metadata"} and source["metadata"]["source"]["url"] == url
    # Without the allow-list, the same loopback URL is refused before any connection.
    refused = fn.call(body, {"Content-Type": "application/json"}, gateway=True)
    assert refused.http_status == 422 and refused.json()["error"]["code"] == "refused_url"
    invoke = fn.call(body, {"Content-Type": "application/json"})
    assert invoke.status == 200 and invoke.json()["error"]["code"] == "refused_url"


def test_the_s3_client_is_built_by_the_cold_call(predict: FakePredict, seaweed: Any, s3: Any, new_bucket: Any) -> None:
    """Issue 10 item 9: the first storage call of a hot container builds no client (it took 920 ms on Fn)."""
    bucket = new_bucket("cold")
    etag = s3.put_object(Bucket=bucket, Key="cat.jpg", Body=JPEG)["ETag"].strip('"')
    env = {**seaweed.env(), "PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": "224", "RESULTS_BUCKET": "results"}
    with FdkProcess(FUNC, env=env) as proc:
        upload = proc.call(JPEG, {"Content-Type": "image/jpeg"}, call_id="01COLDUPLOAD")  # no storage used
        event = proc.call(
            json.dumps(_s3_records(bucket, "cat.jpg", etag)).encode(),
            {"Content-Type": "application/json"},
            call_id="01HOTEVENT",
        )
        logs = proc.json_logs()
    assert upload.json()["cold_start"] is True and upload.json()["timings"]["init_ms"] > 0
    assert event.json()["cold_start"] is False and "init_ms" not in event.json()["timings"]
    assert event.json()["predictions"][0]["status"] == "ok"
    (built,) = [r for r in logs if r["msg"] == "s3 client built"]
    assert built["call_id"] == "01COLDUPLOAD" and set(built["s3_client"]) == {"boto3_import_ms", "client_ms"}
    (init,) = [r for r in logs if r["msg"] == "initialised"]
    assert init["call_id"] == "01COLDUPLOAD" and init["s3_client"] == built["s3_client"]
    assert init["init_ms"] >= built["s3_client"]["client_ms"]


def test_without_storage_config_the_client_is_built_on_first_use(predict: FakePredict) -> None:
    env = {"PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": "224", "S3_ENDPOINT_URL": "", "S3_ACCESS_KEY_ID": ""}
    with FdkProcess(FUNC, env=env) as proc:
        assert proc.call(JPEG, {"Content-Type": "image/jpeg"}).json()["cold_start"] is True
        logs = proc.json_logs()
    (init,) = [r for r in logs if r["msg"] == "initialised"]
    assert "s3_client" not in init and not [r for r in logs if r["msg"] == "s3 client built"]


# --- nothing lost: permanent failures are recorded, transient ones fail the call ---------------------


def test_missing_object_in_an_event_batch_gets_a_failure_record(fn_s3: FdkProcess, s3: Any, new_bucket: Any) -> None:
    bucket = new_bucket("lost")
    etag = s3.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)["ETag"].strip('"')
    records = _s3_records(bucket, "a.jpg", etag)["Records"] + _s3_records(bucket, "gone.jpg", "e-gone")["Records"]
    reply = fn_s3.call(json.dumps({"Records": records}).encode(), {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:500]
    ok, gone = reply.json()["predictions"]
    assert ok["status"] == "ok" and gone["error"]["code"] == "object_not_found"
    assert gone["failure"] == {
        "bucket": "results",
        "key": f"{bucket}/gone.jpg/e-gone/failure.json",
        "status": "created",
    }
    doc = json.loads(s3.get_object(Bucket="results", Key=gone["failure"]["key"])["Body"].read())
    assert doc["stage"] == "fetch" and doc["error"]["code"] == "object_not_found"


def test_storage_down_fails_the_event_call_so_it_is_retried(predict: FakePredict) -> None:
    env = {
        "PREDICT_URL": predict.url,
        "MODEL_INPUT_SIZE": "224",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "S3_ACCESS_KEY_ID": "dev",
        "S3_SECRET_ACCESS_KEY": "devsecret",
        "S3_MAX_ATTEMPTS": "1",
        "S3_CONNECT_TIMEOUT": "1",
    }
    body = json.dumps(_s3_records("images", "a.jpg", "e-1")).encode()
    with FdkProcess(FUNC, env=env) as proc:
        invoke = proc.call(body, {"Content-Type": "application/json"})
        assert invoke.status == 502  # Fn records a failed call: the event source delivers again
        assert (
            invoke.json()["error"]["code"] == "storage_error"
            and "s3://images/a.jpg" in invoke.json()["error"]["message"]
        )
        trigger = proc.call(body, {"Content-Type": "application/json"}, gateway=True)
        assert trigger.http_status == 502  # a webhook sender sees 502 and retries


def test_failure_record_that_cannot_be_written_fails_the_event_call(
    predict: FakePredict, seaweed: Any, s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("norec")
    etag = s3.put_object(Bucket=bucket, Key="notes.jpg", Body=b"not an image")["ETag"].strip('"')
    env = {**seaweed.env(), "PREDICT_URL": predict.url, "MODEL_INPUT_SIZE": "224", "RESULTS_BUCKET": "no-such-bucket"}
    with FdkProcess(FUNC, env=env) as proc:
        reply = proc.call(
            json.dumps(_s3_records(bucket, "notes.jpg", etag)).encode(), {"Content-Type": "application/json"}
        )
        assert reply.status == 502 and reply.json()["error"]["code"] == "storage_error"


def test_predict_rejection_is_recorded_and_not_retried(
    fn_s3: FdkProcess, predict: FakePredict, s3: Any, new_bucket: Any
) -> None:
    bucket = new_bucket("rej")
    etag = s3.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)["ETag"].strip('"')
    predict.reject = "invalid_shape"
    try:
        reply = fn_s3.call(
            json.dumps(_s3_records(bucket, "a.jpg", etag)).encode(), {"Content-Type": "application/json"}
        )
        single = fn_s3.call(JPEG, {"Content-Type": "image/jpeg"})
        trigger = fn_s3.call(JPEG, {"Content-Type": "image/jpeg"}, gateway=True)
    finally:
        predict.reject = None
    assert reply.status == 200, reply.body[:500]  # permanent: the event is not delivered again
    (item,) = reply.json()["predictions"]
    assert item["error"]["code"] == "predict_rejected" and item["failure"]["status"] == "created"
    doc = json.loads(s3.get_object(Bucket="results", Key=item["failure"]["key"])["Body"].read())
    assert doc["stage"] == "predict" and "invalid_shape" in doc["error"]["message"]
    assert single.status == 200 and single.json()["error"]["code"] == "predict_rejected"
    assert trigger.http_status == 422
