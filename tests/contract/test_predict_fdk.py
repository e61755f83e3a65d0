"""predict through its REAL fdk process on a unix socket, called the way the Fn agent calls it.

One LiteRT process serves most tests (hot container); separate processes cover a corrupt model,
unreachable storage and the TensorFlow engine. An unmodified tritonclient reaches the function
through TriggerProxy, which emulates the Fn HTTP trigger with the triggers of func.yaml.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fnvision_common import oip as wire

from modelbuild import photos as photos_mod
from tests.fdkproc import FdkProcess, TriggerProxy

REPO = Path(__file__).resolve().parents[2]
FUNC = REPO / "functions" / "predict" / "func.py"
pytestmark = pytest.mark.integration


def _photos() -> tuple[np.ndarray, list[Any]]:
    photos = photos_mod.sample_photos(["chelsea", "coffee", "camera"])
    return np.stack([photos_mod.preprocess(p.image()) for p in photos]), photos


@pytest.fixture(scope="module")
def images(model_dir: Path) -> np.ndarray:
    return _photos()[0]


@pytest.fixture(scope="module")
def fn(model_dir: Path) -> Iterator[FdkProcess]:
    env = {"LOG_LEVEL": "INFO", "TOP_K": "5", "MAX_JSON_BYTES": str(4 << 20), "MODEL_INVOKE_BATCH": "2"}
    with FdkProcess(FUNC, env=env) as proc:
        yield proc


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def oip_binary(array: np.ndarray, **params: Any) -> tuple[bytes, dict[str, str]]:
    datatype = {"uint8": "UINT8", "float32": "FP32"}[str(array.dtype)]
    raw = array.tobytes()
    tensor = {"name": "images", "shape": list(array.shape), "datatype": datatype,
              "parameters": {"binary_data_size": len(raw)}}
    body, head_len = wire.join({"inputs": [tensor], "parameters": params}, [raw])
    return body, {"Content-Type": wire.BINARY_TYPE, wire.HEADER_LENGTH: str(head_len)}


def top1(reply_json: dict[str, Any]) -> list[int]:
    return [p["top_k"][0]["index"] for p in reply_json["predictions"]]


EXPECTED = [{281, 282, 285}, {967}, {872}]


def assert_expected(indices: list[int]) -> None:
    assert len(indices) == 3
    for got, allowed in zip(indices, EXPECTED, strict=True):
        assert got in allowed


# -- hot container ------------------------------------------------------------------------------------


def test_first_call_is_cold_then_hot_without_reload(fn: FdkProcess, images: np.ndarray) -> None:
    first = fn.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, call_id="01CALLCOLD")
    second = fn.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, call_id="01CALLHOT")
    a, b = first.json(), second.json()
    assert first.status == second.status == 200
    assert a["cold_start"] is True and b["cold_start"] is False
    assert a["call_id"] == "01CALLCOLD" and b["call_id"] == "01CALLHOT"
    assert a["model"]["name"] == "efficientnet-lite0" and a["model"]["engine"] == "litert"
    assert a["model"]["digest"].startswith("sha256:")
    assert "model_load_ms" in a["timings"] and "model_load_ms" not in b["timings"]
    assert b["timings"]["inference_ms"] > 0 and b["timings"]["decode_ms"] >= 0
    for _ in range(3):
        assert fn.call(npy(images[:2]), {"Content-Type": "application/x-npy"}).json()["cold_start"] is False
    loads = [e for e in fn.json_logs() if e.get("msg") == "model loaded"]
    assert len(loads) == 1, "the model must be loaded once per hot container"
    assert loads[0]["call_id"] == "01CALLCOLD" and loads[0]["tensorflow_imported"] is False


def test_litert_process_never_imports_tensorflow(fn: FdkProcess, images: np.ndarray) -> None:
    fn.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
    mapped = fn.mapped_files()
    assert any("ai_edge_litert" in p for p in mapped), "LiteRT should be loaded (sanity check)"
    assert not [p for p in mapped if "/site-packages/tensorflow/" in p]


def test_json_logs_carry_call_id_and_timings(fn: FdkProcess, images: np.ndarray) -> None:
    fn.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, call_id="01LOGCALL")
    (line,) = [e for e in fn.json_logs() if e.get("call_id") == "01LOGCALL" and e["msg"] == "predicted"]
    assert line["fn"] == "predict" and line["level"] == "INFO" and line["cold_start"] is False
    assert {"decode_ms", "inference_ms", "total_ms"} <= set(line["timings"])
    assert not [e for e in fn.json_logs() if e.get("logger", "").startswith(("botocore", "urllib3"))]


# -- every payload format, batch of 3 real photos -------------------------------------------------


def _formats(images: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    u8 = images
    f32 = images.astype(np.float32)
    oip_json = {
        "inputs": [{"name": "images", "shape": list(f32.shape), "datatype": "FP32", "data": f32.ravel().tolist()}],
        "parameters": {"top_k": 5},
    }
    json_type = {"Content-Type": "application/json"}
    return {
        "npy_uint8": (npy(u8), {"Content-Type": "application/x-npy"}),
        "npy_float32": (npy(f32), {"Content-Type": "application/x-npy"}),
        "oip_json": (json.dumps(oip_json).encode(), json_type),
        "oip_binary_uint8": oip_binary(u8),
        "oip_binary_float32": oip_binary(f32, binary_data_output=True),
        "tfs_row": (json.dumps({"instances": u8.tolist()}).encode(), json_type),
        "tfs_columnar": (json.dumps({"inputs": {"images": u8.tolist()}}).encode(), json_type),
        "wml": (
            json.dumps({"input_data": [{"fields": ["image"], "values": u8.tolist()}]}).encode(),
            json_type,
        ),
    }


def _native(name: str, reply_body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    if name.startswith("oip"):
        doc = wire.read_json(reply_body, headers.get("inference-header-content-length"))
        return json.loads(doc["parameters"][wire.NATIVE_PARAMETER])
    doc = json.loads(reply_body)
    return doc.get("fnvision", doc)


@pytest.mark.parametrize(
    "name",
    [
        "npy_uint8",
        "npy_float32",
        "oip_json",
        "oip_binary_uint8",
        "oip_binary_float32",
        "tfs_row",
        "tfs_columnar",
        "wml",
    ],
)
def test_every_format_classifies_a_batch(fn: FdkProcess, images: np.ndarray, name: str) -> None:
    body, headers = _formats(images)[name]
    reply = fn.call(body, headers)
    assert reply.status == 200, reply.body[:300]
    native = _native(name, reply.body, reply.headers)
    assert_expected(top1(native))
    assert all(len(p["top_k"]) == 5 for p in native["predictions"])
    if name == "tfs_row":
        assert [p["top_k_indices"][0] for p in json.loads(reply.body)["predictions"]] == top1(native)
    if name == "wml":
        values = json.loads(reply.body)["predictions"][0]["values"]
        assert [v[0][0] for v in values] == top1(native) and isinstance(values[0][0][1], str)


def test_single_image_and_top_k_option(fn: FdkProcess, images: np.ndarray) -> None:
    body = json.dumps({"instances": [images[1].tolist()], "top_k": 2}).encode()
    doc = fn.call(body, {"Content-Type": "application/json"}).json()
    assert doc["predictions"][0]["top_k_indices"][0] == 967 and len(doc["predictions"][0]["top_k_indices"]) == 2


# -- errors -------------------------------------------------------------------------------------------


def _error_cases(images: np.ndarray) -> dict[str, tuple[bytes, dict[str, str], str, int]]:
    json_type = {"Content-Type": "application/json"}
    return {
        "empty": (b"", json_type, "empty_body", 400),
        "unknown": (b'{"image": "cat.jpg"}', json_type, "unknown_payload", 400),
        "not_json": (b"\x89PNG\r\n", {"Content-Type": "image/png"}, "unknown_payload", 400),
        "wrong_size": (npy(np.zeros((1, 200, 200, 3), np.uint8)), {}, "invalid_shape", 422),
        "wrong_channels": (npy(np.zeros((1, 224, 224, 1), np.uint8)), {}, "invalid_shape", 422),
        "wrong_dtype": (npy(images[:1].astype(np.float64)), {}, "invalid_dtype", 422),
        "normalised_floats": (npy(np.full((1, 224, 224, 3), -1.0, np.float32)), {}, "invalid_value", 422),
        "binary_truncated": (
            oip_binary(images[:1])[0][:-10],
            oip_binary(images[:1])[1],
            "invalid_shape",
            422,
        ),
        "json_too_big": (
            json.dumps({"instances": np.zeros((6, 224, 224, 3)).tolist()}).encode(),
            json_type,
            "payload_too_large",
            413,
        ),
        "bad_top_k": (
            oip_binary(images[:1], top_k=0)[0],
            oip_binary(images[:1], top_k=0)[1],
            "invalid_parameter",
            400,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "unknown",
        "not_json",
        "wrong_size",
        "wrong_channels",
        "wrong_dtype",
        "normalised_floats",
        "binary_truncated",
        "json_too_big",
        "bad_top_k",
    ],
)
@pytest.mark.parametrize("gateway", [False, True], ids=["invoke", "trigger"])
def test_errors_are_json_with_the_fn_status_rules(fn: FdkProcess, images: np.ndarray, case: str, gateway: bool) -> None:
    body, headers, code, status = _error_cases(images)[case]
    reply = fn.call(body, headers, gateway=gateway)
    # Client errors: wire 200 in both modes (the body carries the code); the trigger client sees the status.
    assert reply.status == 200
    assert reply.json()["error"]["code"] == code and reply.json()["error"]["message"]
    assert reply.headers["content-type"] == "application/json"
    if gateway:
        assert reply.headers["fn-http-status"] == str(status)
    else:
        assert "fn-http-status" not in reply.headers
    assert fn.alive()


def test_gateway_success_headers_are_wrapped(fn: FdkProcess, images: np.ndarray) -> None:
    body, headers = oip_binary(images[:1], binary_data_output=True)
    reply = fn.call(body, headers, gateway=True)
    assert reply.status == 200 and reply.headers["fn-http-status"] == "200"
    assert int(reply.headers["fn-http-h-inference-header-content-length"]) < len(reply.body)
    assert reply.headers["content-type"] == "application/octet-stream"


# -- tritonclient through an emulated HTTP trigger ---------------------------------------------------


def _trigger_sources() -> list[str]:
    spec = yaml.safe_load((FUNC.parent / "func.yaml").read_text())
    return [t["source"] for t in spec["triggers"] if t["type"] == "http"]


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary_in", "json_in"])
@pytest.mark.parametrize("outputs", ["default", "binary", "json"])
def test_tritonclient_unchanged(fn: FdkProcess, images: np.ndarray, binary_in: bool, outputs: str) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    with TriggerProxy(fn, base_path="/t/vision", sources=_trigger_sources()) as proxy:
        client = httpclient.InferenceServerClient(url=f"{proxy.url}/predict")
        inp = httpclient.InferInput("images", list(images.shape), "UINT8")
        inp.set_data_from_numpy(images, binary_data=binary_in)
        requested = None
        if outputs != "default":
            binary = outputs == "binary"
            requested = [
                httpclient.InferRequestedOutput(name, binary_data=binary)
                for name in ("top_k_indices", "top_k_scores", "top_k_labels")
            ]
        result = client.infer(
            "efficientnet-lite0", [inp], outputs=requested, request_id="req-7", parameters={"top_k": 3}
        )
        client.close()
    assert proxy.requests[0][0] == "/t/vision/predict/v2/models/efficientnet-lite0/infer"
    indices = result.as_numpy("top_k_indices")
    scores = result.as_numpy("top_k_scores")
    labels = result.as_numpy("top_k_labels")
    assert indices.shape == scores.shape == labels.shape == (3, 3)
    assert_expected([int(i) for i in indices[:, 0]])
    assert np.all(np.diff(scores, axis=1) <= 0)
    first_label = labels[1, 0].decode() if isinstance(labels[1, 0], bytes) else str(labels[1, 0])
    assert first_label == "espresso"
    response = result.get_response()
    assert response["id"] == "req-7" and response["model_name"] == "efficientnet-lite0"
    assert response["parameters"]["engine"] == "litert"


def test_tritonclient_sees_error_status(fn: FdkProcess, images: np.ndarray) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.utils")
    with TriggerProxy(fn, base_path="/t/vision", sources=_trigger_sources()) as proxy:
        client = httpclient.InferenceServerClient(url=f"{proxy.url}/predict")
        inp = httpclient.InferInput("images", [1, 100, 100, 3], "UINT8")
        inp.set_data_from_numpy(np.zeros((1, 100, 100, 3), np.uint8))
        with pytest.raises(utils.InferenceServerException) as info:
            client.infer("efficientnet-lite0", [inp])
        client.close()
    assert info.value.status() == "422" and "invalid_shape" in str(info.value.message())


def test_tritonclient_only_infer_is_served(fn: FdkProcess) -> None:
    """README: only infer works unchanged; health and metadata calls hit no trigger (404) today."""
    httpclient = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.utils")
    with TriggerProxy(fn, base_path="/t/vision", sources=_trigger_sources()) as proxy:
        client = httpclient.InferenceServerClient(url=f"{proxy.url}/predict")
        assert client.is_server_live() is False
        assert client.is_server_ready() is False
        assert client.is_model_ready("efficientnet-lite0") is False
        for call in (client.get_server_metadata, lambda: client.get_model_metadata("efficientnet-lite0")):
            with pytest.raises(utils.InferenceServerException) as info:
                call()
            assert info.value.status() == "404"
        client.close()
    assert not proxy.requests  # none of them reached the function


# -- server-side failures: separate processes -----------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt_model(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("corrupt") / "model"
    target.mkdir()
    for name in ("manifest.json", "labels.json", "efficientnet_lite0.tflite"):
        shutil.copy(model_dir / name, target / name)
    with open(target / "efficientnet_lite0.tflite", "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    return target


def test_corrupt_model_is_refused_and_the_container_survives(corrupt_model: Path, images: np.ndarray) -> None:
    with FdkProcess(FUNC, env={"MODEL_URI": str(corrupt_model)}) as proc:
        invoke = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
        trigger = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, gateway=True)
        assert proc.alive()
    assert invoke.status == 502 and invoke.json()["error"]["code"] == "model_corrupt"
    assert "sha256" in invoke.json()["error"]["message"]
    assert trigger.status == 200 and trigger.headers["fn-http-status"] == "500"
    assert trigger.json()["error"]["code"] == "model_corrupt"


def test_missing_model_and_bad_config(tmp_path: Path, images: np.ndarray, model_dir: Path) -> None:
    with FdkProcess(FUNC, env={"MODEL_URI": str(tmp_path / "nothing")}) as proc:
        missing = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, gateway=True)
    with FdkProcess(FUNC, env={"TOP_K": "many"}) as proc:
        config = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
    assert missing.headers["fn-http-status"] == "503" and missing.json()["error"]["code"] == "model_unavailable"
    assert config.status == 502 and config.json()["error"]["code"] == "config_error"
    assert "TOP_K" in config.json()["error"]["message"]


@pytest.mark.parametrize("level", ["LOUD", "10", "verbose"])
def test_bad_log_level_is_a_json_config_error(level: str, images: np.ndarray, model_dir: Path) -> None:
    """LOG_LEVEL is validated by Settings: the module still loads and every call says why it fails."""
    with FdkProcess(FUNC, env={"LOG_LEVEL": level}) as proc:
        invoke = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
        trigger = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, gateway=True)
        assert proc.alive()
        logs = proc.json_logs()
    assert invoke.status == 502 and invoke.json()["error"]["code"] == "config_error"
    assert "LOG_LEVEL" in invoke.json()["error"]["message"]
    assert trigger.status == 200 and trigger.headers["fn-http-status"] == "500"
    assert trigger.json()["error"]["code"] == "config_error"
    failures = [line for line in logs if line.get("code") == "config_error"]
    assert len(failures) == 2 and failures[0]["call_id"] and "LOG_LEVEL" in failures[0]["error"]


def test_log_level_comes_from_settings(images: np.ndarray, model_dir: Path) -> None:
    with FdkProcess(FUNC, env={"LOG_LEVEL": " warning "}) as proc:
        reply = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
        quiet = proc.json_logs()
    with FdkProcess(FUNC, env={"LOG_LEVEL": "debug"}) as proc:
        proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
        chatty = proc.json_logs()
    assert reply.status == 200
    assert not [line for line in quiet if line["level"] in ("DEBUG", "INFO")]
    assert any(line["msg"] == "predicted" for line in chatty)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_every_stderr_line_is_json(level: str, images: np.ndarray, model_dir: Path) -> None:
    """LiteRT's C++ log lines (fd 2) come out as JSON records of the `litert` logger (nativelog)."""
    with FdkProcess(FUNC, env={"LOG_LEVEL": level, "MODEL_INVOKE_BATCH": "2"}) as proc:
        assert proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}).status == 200  # cold: builds
        assert proc.call(npy(images), {"Content-Type": "application/x-npy"}).status == 200  # resizes (2, then 1)
        assert proc.call(*oip_binary(images[:2])).status == 200
        assert proc.call(b"not a payload").json()["error"]["code"] == "unknown_payload"
        text = proc.stderr()
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
    assert all(isinstance(r, dict) and r["fn"] == "predict" for r in records)
    native = [r for r in records if r["logger"] == "litert"]
    assert [r["msg"] for r in native] == ["Created TensorFlow Lite XNNPACK delegate for CPU."]
    assert native[0]["level"] == "INFO" and native[0]["native"] is True and native[0]["call_id"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_s3_client_is_built_by_the_cold_call(images: np.ndarray, seaweed: Any, new_bucket: Any) -> None:
    """Issue 10 item 9: a hot container's first recording call does not build the S3 client."""
    bucket = new_bucket("cold")
    sources = [{"bucket": bucket, "key": "cat.jpg", "etag": "e1"}]
    recorded = json.dumps({"instances": [images[0].tolist()], "sources": sources}).encode()
    with FdkProcess(FUNC, env={**seaweed.env(), "RESULTS_BUCKET": bucket}) as proc:
        cold = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}, call_id="01COLD")
        hot = proc.call(recorded, {"Content-Type": "application/json"}, call_id="01HOTRECORD")
        logs = proc.json_logs()
    assert cold.json()["cold_start"] is True and hot.json()["fnvision"]["cold_start"] is False
    assert hot.json()["fnvision"]["predictions"][0]["result"]["status"] == "created"
    (built,) = [r for r in logs if r["msg"] == "s3 client built"]
    assert built["call_id"] == "01COLD" and built["s3_client"]["client_ms"] > 0
    assert "boto3_import_ms" in built["s3_client"]  # boto3 is imported by the cold call too


def test_without_storage_config_boto3_is_never_imported(images: np.ndarray, model_dir: Path) -> None:
    env = {k: "" for k in ("S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")}
    with FdkProcess(FUNC, env=env) as proc:
        assert proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"}).status == 200
        assert proc.call(npy(images[:2]), {"Content-Type": "application/x-npy"}).status == 200
        logs = proc.json_logs()
    assert not [r for r in logs if r["msg"] == "s3 client built"]  # calls that record nothing need no storage


def test_unreachable_storage_fails_the_call_with_storage_unavailable(images: np.ndarray, model_dir: Path) -> None:
    env = {
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "S3_ACCESS_KEY_ID": "dev",
        "S3_SECRET_ACCESS_KEY": "devsecret",
        "S3_MAX_ATTEMPTS": "1",
        "S3_CONNECT_TIMEOUT": "1",
    }
    body = json.dumps({"instances": [images[0].tolist()], "sources": [{"bucket": "i", "key": "k", "etag": "e"}]})
    with FdkProcess(FUNC, env=env) as proc:
        reply = proc.call(body.encode(), {"Content-Type": "application/json"})
        unrecorded = proc.call(npy(images[:1]), {"Content-Type": "application/x-npy"})
        assert proc.alive()
    assert reply.status == 502 and reply.json()["error"]["code"] == "storage_unavailable"
    assert unrecorded.status == 200, "calls that record nothing do not need storage"


@pytest.mark.slow
def test_tensorflow_engine_through_fdk(images: np.ndarray, model_dir: Path) -> None:
    pytest.importorskip("tensorflow")
    with FdkProcess(FUNC, env={"MODEL_ENGINE": "tensorflow"}) as proc:
        reply = proc.call(npy(images), {"Content-Type": "application/x-npy"})
        mapped = proc.mapped_files()
    doc = reply.json()
    assert reply.status == 200 and doc["model"]["engine"] == "tensorflow" and doc["cold_start"] is True
    assert_expected(top1(doc))
    assert [p for p in mapped if "/site-packages/tensorflow/" in p], "positive control: TF is visible in maps"
