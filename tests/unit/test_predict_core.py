"""Settings, errors, batch checks, top-k, result documents, load-once cache, service (fake engine)."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fnvision_common.fnstatus import wire_status
from predict_core import model as model_mod
from predict_core import service
from predict_core.codecs.base import Label, Source
from predict_core.errors import (
    ConfigError,
    DTypeError,
    InvalidParameterError,
    ModelCorruptError,
    ModelError,
    RecordRefusedError,
    ShapeError,
    StorageUnavailableError,
    ValueRangeError,
)
from predict_core.manifest import parse as parse_manifest
from predict_core.manifest import verify
from predict_core.results import S3ResultStore, build_document, record
from predict_core.settings import Settings
from predict_core.tensors import to_batch
from predict_core.topk import top_k

from tests.data.stores import MemoryResultStore

MANIFEST = {
    "name": "tiny",
    "version": "2.0.0",
    "digest": "sha256:00",
    "input": {"shape": [None, 4, 4, 3], "layout": "NHWC"},
    "labels": {"path": "labels.json", "sha256": "00"},
    "artifacts": {"tflite": {"path": "m.tflite", "sha256": "00"}},
}
LABELS = tuple(f"class {i}" for i in range(6))


# -- settings -------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = Settings.from_env({}, "/function/model")
    assert (s.model_uri, s.engine, s.num_threads, s.top_k, s.max_batch) == (
        "/function/model",
        "litert",
        None,
        5,
        64,
    )
    assert (s.results_bucket, s.results_prefix, s.verify, s.s3.checksum_mode) == (
        "results",
        "",
        True,
        "when_required",
    )


def test_settings_from_env() -> None:
    env = {
        "MODEL_URI": "s3://models/lite0/",
        "MODEL_ENGINE": "TensorFlow",
        "MODEL_NUM_THREADS": "4",
        "TOP_K": "3",
        "MAX_BATCH": "8",
        "MODEL_VERIFY": "false",
        "MODEL_INVOKE_BATCH": "2",
        "MAX_JSON_BYTES": "2048",
        "RESULTS_PREFIX": "v1/",
        "S3_ENDPOINT_URL": "http://127.0.0.1:8334",
    }
    s = Settings.from_env(env, "/x")
    assert (s.model_uri, s.engine, s.num_threads, s.top_k, s.max_batch, s.verify) == (
        "s3://models/lite0/",
        "tensorflow",
        4,
        3,
        8,
        False,
    )
    assert (
        s.invoke_batch == 2
        and s.max_json_bytes == 2048
        and s.results_prefix == "v1/"
        and s.s3.endpoint_url == "http://127.0.0.1:8334"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MODEL_ENGINE", "onnx"),
        ("TOP_K", "0"),
        ("TOP_K", "five"),
        ("MAX_BATCH", "-1"),
        ("MAX_JSON_BYTES", "10"),
        ("MODEL_NUM_THREADS", "x"),
        ("MODEL_NUM_THREADS", "17"),  # Fn's 50-pid limit: at most 16 (settings.MAX_THREADS)
        ("MODEL_NUM_THREADS", "0"),
        ("MODEL_VERIFY", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("S3_ADDRESSING_STYLE", "sideways"),
    ],
)
def test_settings_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: value}, "/x")


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "gateway", "wire"),
    [
        (200, False, 200),
        (400, False, 200),
        (422, False, 200),
        (500, False, 502),
        (502, False, 502),
        (503, False, 502),
        (504, False, 504),
        (400, True, 200),
        (502, True, 200),
        (200, True, 200),
    ],
)
def test_wire_status(status: int, gateway: bool, wire: int) -> None:
    assert wire_status(status, gateway) == wire


def test_error_bodies_and_statuses() -> None:
    assert ModelCorruptError("x").to_body() == {"error": {"code": "model_corrupt", "message": "x"}}
    assert (StorageUnavailableError.status, StorageUnavailableError.code) == (502, "storage_unavailable")
    assert (ShapeError.status, DTypeError.code) == (422, "invalid_dtype")


# -- batch ----------------------------------------------------------------------------------------


def test_to_batch_accepts_single_uint8_image() -> None:
    out = to_batch(np.full((4, 4, 3), 7, np.uint8), 4, 4, 3, 8)
    assert out.shape == (1, 4, 4, 3) and out.dtype == np.uint8 and out.max() == 7


@pytest.mark.parametrize(
    ("array", "error"),
    [
        (np.zeros((1, 5, 4, 3), np.uint8), ShapeError),
        (np.zeros((1, 4, 4, 1), np.uint8), ShapeError),
        (np.zeros((4, 4), np.uint8), ShapeError),
        (np.zeros((9, 4, 4, 3), np.uint8), ShapeError),
        (np.zeros((0, 4, 4, 3), np.uint8), ShapeError),
        (np.zeros((1, 4, 4, 3), np.float64), DTypeError),
        (np.zeros((1, 4, 4, 3), np.int32), DTypeError),
        (np.full((1, 4, 4, 3), 256.0, np.float32), ValueRangeError),
        (np.full((1, 4, 4, 3), -0.5, np.float32), ValueRangeError),
        (np.full((1, 4, 4, 3), np.nan, np.float32), ValueRangeError),
    ],
)
def test_to_batch_rejects(array: np.ndarray, error: type[Exception]) -> None:
    with pytest.raises(error):
        to_batch(array, 4, 4, 3, 8)


# -- top-k ----------------------------------------------------------------------------------------


def test_top_k_order_and_ties() -> None:
    probs = np.array([[0.1, 0.3, 0.3, 0.2, 0.05, 0.05], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    rows = top_k(probs, 3, LABELS)
    assert [lab.index for lab in rows[0]] == [1, 2, 3]
    assert rows[1][0] == Label(5, "class 5", 1.0) and [lab.index for lab in rows[1][1:]] == [0, 1]
    assert len(top_k(probs, 6, LABELS)[0]) == 6


def test_top_k_range() -> None:
    with pytest.raises(InvalidParameterError):
        top_k(np.zeros((1, 6), np.float32), 7, LABELS)


# -- manifest -------------------------------------------------------------------------------------


def test_verify_refuses_a_changed_file(tmp_path: Path) -> None:
    f = tmp_path / "m.tflite"
    f.write_bytes(b"model")
    good = "sha256:" + __import__("hashlib").sha256(b"model").hexdigest()
    verify(f, good, "tflite")
    f.write_bytes(b"modem")
    with pytest.raises(ModelCorruptError, match="refusing"):
        verify(f, good, "tflite")


def test_bad_manifest_is_corrupt() -> None:
    with pytest.raises(ModelCorruptError):
        parse_manifest(b'{"name": "x"}')


FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "predict"
SAVEDMODEL = "efficientnet_lite0_savedmodel"


@pytest.fixture
def model_without_savedmodel(model_dir: Path, tmp_path: Path) -> Path:
    """The model folder as the default image holds it (.dockerignore leaves the SavedModel out)."""
    target = tmp_path / "model"
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns(SAVEDMODEL))
    return target


@pytest.mark.parametrize("verify", ["true", "false"])
def test_litert_serves_a_model_folder_without_the_savedmodel(model_without_savedmodel: Path, verify: str) -> None:
    settings = Settings.from_env({"MODEL_URI": str(model_without_savedmodel), "MODEL_VERIFY": verify}, "/x")
    loaded = model_mod.load_model(settings, lambda: None)
    assert loaded.engine.name == "litert" and len(loaded.labels) == 1000
    assert loaded.engine.predict(np.zeros((1, 224, 224, 3), np.uint8)).shape == (1, 1000)


@pytest.mark.parametrize("verify", ["true", "false"])
def test_tensorflow_without_the_savedmodel_is_unavailable(model_without_savedmodel: Path, verify: str) -> None:
    env = {"MODEL_URI": str(model_without_savedmodel), "MODEL_ENGINE": "tensorflow", "MODEL_VERIFY": verify}
    with pytest.raises(ModelError) as info:
        model_mod.load_model(Settings.from_env(env, "/x"), lambda: None)
    assert (info.value.code, info.value.status) == ("model_unavailable", 503)
    assert SAVEDMODEL in info.value.message and ".dockerignore" in info.value.message


def test_labels_are_checked_for_every_engine(model_without_savedmodel: Path) -> None:
    (model_without_savedmodel / "labels.json").write_text("[]")
    with pytest.raises(ModelCorruptError, match="labels"):
        model_mod.load_model(Settings.from_env({"MODEL_URI": str(model_without_savedmodel)}, "/x"), lambda: None)


def test_the_image_ships_the_savedmodel_exactly_when_it_ships_tensorflow() -> None:
    ignored = [line.strip().rstrip("/") for line in (FUNCTION_DIR / ".dockerignore").read_text().splitlines()]
    requirements = (FUNCTION_DIR / "requirements.txt").read_text().splitlines()
    ships_tensorflow = any(line.strip().lower().startswith("tensorflow") for line in requirements)
    assert (f"model/{SAVEDMODEL}" not in ignored) == ships_tensorflow
    assert "model" not in ignored and "model/efficientnet_lite0.tflite" not in ignored


# -- results --------------------------------------------------------------------------------------

SOURCE = Source(
    "images",
    "cats/chelsea.jpg",
    '"abc123"',
    {"source": {"size": 10, "bucket": "ignored"}, "image": {"width": 451}, "exif": None, "predictions": "no"},
)
MODEL_INFO = {"name": "tiny", "version": "2.0.0", "digest": "sha256:00", "engine": "litert"}


def test_result_document_copies_metadata_but_not_over_reserved_keys() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    doc = build_document(SOURCE, [Label(1, "a", 0.9)], MODEL_INFO, {"inference_ms": 1.0}, "C", True, when)
    assert doc["schema"] == "fn-vision/result@1"
    assert doc["source"] == {"size": 10, "bucket": "images", "key": "cats/chelsea.jpg", "etag": "abc123"}
    assert doc["image"] == {"width": 451} and doc["exif"] is None
    assert doc["predictions"] == [{"index": 1, "label": "a", "score": 0.9}]
    assert doc["recorded_at"] == "2026-01-02T03:04:05Z" and doc["cold_start"] is True and doc["call_id"] == "C"


def test_record_once_then_exists() -> None:
    store = MemoryResultStore()
    first = record(store, "results", "p/", SOURCE, MODEL_INFO, {"n": 1})
    second = record(store, "results", "p/", SOURCE, MODEL_INFO, {"n": 2})
    assert first == {
        "bucket": "results",
        "key": "p/images/cats/chelsea.jpg/abc123/tiny@2.0.0.json",
        "status": "created",
    }
    assert second["status"] == "exists" and second["key"] == first["key"]
    assert json.loads(store.objects[("results", first["key"])]) == {"n": 1}


class _FakeClient:
    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc
        self.calls: list[dict] = []

    def put_object(self, **kw: object) -> None:
        self.calls.append(kw)
        if self.exc:
            raise self.exc


class _ClientError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


def test_s3_store_conditional_put_and_errors() -> None:
    ok = _FakeClient(None)
    assert S3ResultStore(ok).put_if_absent("b", "k", b"{}") is True
    assert ok.calls[0]["IfNoneMatch"] == "*"
    assert S3ResultStore(_FakeClient(_ClientError("PreconditionFailed"))).put_if_absent("b", "k", b"{}") is False
    with pytest.raises(StorageUnavailableError, match="AccessDenied"):
        S3ResultStore(_FakeClient(_ClientError("AccessDenied"))).put_if_absent("b", "k", b"{}")
    with pytest.raises(StorageUnavailableError, match="ConnectionRefusedError"):
        S3ResultStore(_FakeClient(ConnectionRefusedError("nope"))).put_if_absent("b", "k", b"{}")


# -- load-once cache --------------------------------------------------------------------------------


class FakeEngine:
    name = "litert"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        n = batch.shape[0]
        probs = np.zeros((n, len(LABELS)), np.float32)
        probs[np.arange(n), np.arange(n) % len(LABELS)] = 1.0  # image i -> class i
        return probs


def fake_model() -> model_mod.LoadedModel:
    return model_mod.LoadedModel(parse_manifest(json.dumps(MANIFEST)), LABELS, FakeEngine(), "mem://", 1.0)


def test_get_model_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []

    def slow_load(settings: Settings, s3: object) -> model_mod.LoadedModel:
        loads.append(1)
        time.sleep(0.05)
        return fake_model()

    monkeypatch.setattr(model_mod, "load_model", slow_load)
    cache = model_mod.ModelCache()  # what get_model uses, one per container; a fresh one here
    settings = Settings.from_env({}, "/nowhere")
    got: list[tuple[model_mod.LoadedModel, bool]] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(settings, object))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert sum(cold for _, cold in got) == 1 and len({id(m) for m, _ in got}) == 1


# -- service with a fake engine ------------------------------------------------------------------


def make_deps(store: object, cold_first: bool = True) -> tuple[service.Deps, FakeEngine]:
    m = fake_model()
    state = {"cold": cold_first}

    def get_model() -> tuple[model_mod.LoadedModel, bool]:
        cold, state["cold"] = state["cold"], False
        return m, cold

    settings = Settings.from_env({"TOP_K": "2", "MAX_BATCH": "4"}, "/x")
    return service.Deps(settings, get_model, lambda: store), m.engine  # type: ignore[return-value]


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def tfs(n: int, **extra: object) -> bytes:
    return json.dumps({"instances": np.zeros((n, 4, 4, 3)).tolist(), **extra}).encode()


def test_service_answers_and_reports_cold_once() -> None:
    deps, engine = make_deps(MemoryResultStore())
    first = service.predict(npy(np.zeros((3, 4, 4, 3), np.uint8)), {}, "C1", deps)
    second = service.predict(npy(np.zeros((1, 4, 4, 3), np.uint8)), {}, "C2", deps)
    a, b = json.loads(first.body), json.loads(second.body)
    assert first.status == 200 and a["cold_start"] is True and b["cold_start"] is False
    assert [p["top_k"][0]["index"] for p in a["predictions"]] == [0, 1, 2]
    assert len(a["predictions"][0]["top_k"]) == 2  # TOP_K=2
    assert a["model"] == MODEL_INFO and a["call_id"] == "C1"
    assert "model_load_ms" in a["timings"] and "model_load_ms" not in b["timings"]
    assert engine.calls == 2


def test_service_records_and_reports_exists() -> None:
    store = MemoryResultStore()
    deps, _ = make_deps(store)
    sources = [{"bucket": "images", "key": "a.jpg", "etag": "e1", "metadata": {"image": {"width": 4}}}, None]
    body = tfs(2, sources=sources, top_k=1)
    first = json.loads(service.predict(body, {}, "C1", deps).body)["fnvision"]
    again = json.loads(service.predict(body, {}, "C2", deps).body)["fnvision"]
    assert first["predictions"][0]["result"]["status"] == "created" and "result" not in first["predictions"][1]
    assert again["predictions"][0]["result"]["status"] == "exists"
    assert "record_ms" in first["timings"]
    (key,) = [k for _, k in store.objects]
    doc = json.loads(store.objects[("results", key)])
    assert key == "images/a.jpg/e1/tiny@2.0.0.json" and doc["call_id"] == "C1" and doc["image"] == {"width": 4}
    assert doc["predictions"] == [{"index": 0, "label": "class 0", "score": 1.0}]


def test_service_storage_failure_fails_the_call() -> None:
    class Down:
        def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
            raise StorageUnavailableError("cannot record: EndpointConnectionError")

    deps, _ = make_deps(Down())
    reply = service.predict(tfs(1, sources=[{"bucket": "i", "key": "k", "etag": "e"}]), {}, "C", deps)
    assert reply.status == 502 and json.loads(reply.body)["error"]["code"] == "storage_unavailable"


class PartlyBroken:
    """A store whose writes fail for chosen keys only (a per-object fault no real store gives on demand)."""

    def __init__(self, fail: dict[str, Exception]) -> None:
        self.fail = fail
        self.inner = MemoryResultStore()

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        for part, exc in self.fail.items():
            if part in key:
                raise exc
        return self.inner.put_if_absent(bucket, key, body)


def test_service_one_failed_write_does_not_sink_the_batch() -> None:
    store = PartlyBroken({"b.jpg": RecordRefusedError("KeyTooLongError"), "c.jpg": StorageUnavailableError("down")})
    deps, _ = make_deps(store)
    sources = [{"bucket": "i", "key": k, "etag": "e"} for k in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")]
    reply = service.predict(tfs(4, sources=sources), {}, "C", deps)
    assert reply.status == 200
    results = [p["result"] for p in json.loads(reply.body)["fnvision"]["predictions"]]
    assert [r["status"] for r in results] == ["created", "failed", "failed", "created"]
    assert [r.get("error", {}).get("code") for r in results] == [None, "record_refused", "storage_unavailable", None]
    assert len(store.inner.objects) == 2


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        (b"", "empty_body", 400),
        (b"<xml/>", "unknown_payload", 400),
        (tfs(2, sources=[None]), "invalid_parameter", 400),
        (tfs(1, top_k=7), "invalid_parameter", 400),
        (tfs(1, sources=[{"bucket": "i", "key": "k" * 1025, "etag": "e"}]), "invalid_parameter", 400),
        (tfs(1, sources=[{"bucket": "i/j", "key": "k", "etag": "e"}]), "invalid_parameter", 400),
        (tfs(5), "invalid_shape", 422),
        (npy(np.zeros((1, 4, 4, 3), np.int16)), "invalid_dtype", 422),
        (npy(np.zeros((1, 3, 4, 3), np.uint8)), "invalid_shape", 422),
    ],
)
def test_service_errors(body: bytes, code: str, status: int) -> None:
    deps, _ = make_deps(MemoryResultStore())
    reply = service.predict(body, {"content-type": "application/json"}, "C", deps)
    assert (reply.status, json.loads(reply.body)["error"]["code"]) == (status, code)


def test_service_turns_bugs_into_internal_error() -> None:
    def broken() -> tuple[model_mod.LoadedModel, bool]:
        raise RuntimeError("boom")

    deps = service.Deps(Settings.from_env({}, "/x"), broken, MemoryResultStore)
    reply = service.predict(tfs(1), {}, "C", deps)
    assert reply.status == 500 and json.loads(reply.body)["error"]["code"] == "internal_error"


def test_a_large_call_hands_its_memory_back_after_the_answer() -> None:
    import asyncio

    from predict_core import memory

    if memory._TRIM is None:
        pytest.skip("no glibc malloc_trim here")
    assert memory.release_after_call(memory.TRIM_AFTER_BYTES - 1) is False
    assert memory.release_after_call(memory.TRIM_AFTER_BYTES) is True  # no event loop: trimmed at once

    async def in_the_fdk_loop() -> int:
        loop = asyncio.get_running_loop()
        memory.release_after_call(16 << 20)
        return len(loop._ready)  # type: ignore[attr-defined]  # scheduled, not run yet

    assert asyncio.run(in_the_fdk_loop()) == 1
