"""What `make bench` reports: each figure, where it comes from, and what it is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    label: str
    unit: str
    goal: str = ""


FIGURES: dict[str, Figure] = {
    # cold start: process spawn → first answer
    "cold_litert": Figure("predict cold start, LiteRT engine (fdk)", "s", "≤ 0.5 s"),
    "cold_tf": Figure("predict cold start, TensorFlow engine (fdk)", "s"),
    "cold_flask": Figure("Flask + Keras baseline cold start", "s"),
    # hot latency, one image
    "hot_bare": Figure("bare LiteRT invoke in-process, 1 image (floor)", "ms"),
    "hot_fdk": Figure("predict through the fdk socket, 1 image", "ms"),
    "hot_fnlocal": Figure("predict through fnlocal /invoke, 1 image", "ms"),
    "hot_flask_predict": Figure("Flask + Keras `model.predict`, 1 image", "ms"),
    "hot_flask_on_batch": Figure("Flask + Keras `predict_on_batch`, 1 image", "ms"),
    "overhead_fdk": Figure("fdk overhead per call (round trip − inference timed inside the call, p50)", "ms",
                           "≤ 2 ms"),
    "overhead_fdk_diff": Figure("predict via fdk p50 − bare invoke p50 (separate phases, noisier)", "ms"),
    "fnlocal_added": Figure("fnlocal added per call (echo, p50)", "ms", "≤ 1 ms"),
    # throughput
    "b1_fdk": Figure("batch-1 throughput through fdk", "img/s"),
    "b1_bare": Figure("batch-1 throughput, bare invoke", "img/s"),
    "b1_flask": Figure("batch-1 throughput, Flask `predict_on_batch`", "img/s"),
    "b32_fdk": Figure("batch-32 throughput through fdk", "img/s"),
    "b32_bare": Figure("batch-32 throughput, bare invoke", "img/s"),
    "b32_flask": Figure("batch-32 throughput, Flask `predict_on_batch`", "img/s"),
    # preprocess
    "pre_12mp_draft": Figure("12 MP JPEG → 224 tensor, draft decoding", "ms", "≤ 40 ms"),
    "pre_12mp_full": Figure("12 MP JPEG → 224 tensor, full decode + resize", "ms"),
    "pre_640": Figure("640×480 JPEG → 224 tensor", "ms"),
    # end to end
    "e2e_p50": Figure("upload → result, 640×480, hot, p50", "ms", "≤ 50 ms"),
    "e2e_p95": Figure("upload → result, 640×480, hot, p95", "ms"),
    "backfill": Figure("backfill throughput (S3 → preprocess → predict → result)", "img/s", "≥ 0.8 × bare"),
    "bare_ips": Figure("bare model throughput, LiteRT batch 32", "img/s"),
    # memory
    "rss_predict_litert": Figure("peak RSS, predict (LiteRT) after batch 32", "MiB", "≤ 128"),
    "rss_predict_tf": Figure("peak RSS, predict (TensorFlow engine), one call", "MiB"),
    "rss_preprocess": Figure("peak RSS, preprocess answering a 12 MP upload", "MiB", "≤ 128"),
    "rss_flask": Figure("peak RSS, Flask + Keras baseline", "MiB"),
    # payload
    "bytes_binary": Figure("bytes per image preprocess → predict (binary OIP v2)", "B"),
    "bytes_json": Figure("bytes per image as float32 JSON", "B"),
}

#: (ours, peer, what the ratio says) — ratio = ours ÷ peer within one repeat
COMPARISONS: list[tuple[str, str, str]] = [
    ("cold_litert", "cold_tf", "same model, same function: LiteRT vs TensorFlow engine"),
    ("cold_litert", "cold_flask", "serverless cold start vs the seeds' Flask + Keras service"),
    ("hot_fdk", "hot_bare", "cost of the Fn protocol around the model (1.00 = free)"),
    ("hot_fnlocal", "hot_bare", "…plus fnlocal's HTTP front"),
    ("hot_fdk", "hot_flask_predict", "vs the seeds' per-request `model.predict`"),
    ("hot_fdk", "hot_flask_on_batch", "vs the baseline's best practice (`predict_on_batch`)"),
    ("b32_fdk", "b32_bare", "batch-32 throughput kept through fdk (1.00 = all)"),
    ("b32_fdk", "b32_flask", "batch-32 throughput vs Flask + Keras"),
    ("pre_12mp_draft", "pre_12mp_full", "draft decoding vs full decode (goal ≤ 0.2)"),
    ("backfill", "bare_ips", "end-to-end backfill vs the bare model (goal ≥ 0.8)"),
    ("rss_predict_litert", "rss_flask", "memory of a predict container vs the baseline"),
    ("rss_predict_litert", "rss_predict_tf", "LiteRT vs TensorFlow engine memory"),
    ("bytes_binary", "bytes_json", "payload per image, binary uint8 vs float32 JSON"),
]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def extract(run: dict[str, Any]) -> dict[str, float | None]:
    """Turn one pass of the sections' raw results into {figure id: value}."""
    out: dict[str, float | None] = {}
    predict, base, pre = run.get("predict", {}), run.get("baseline", {}), run.get("preprocess", {})
    fnl, e2e = run.get("fnlocal", {}), run.get("e2e", {})
    for cold in predict.get("cold_start", []):
        key = {"litert": "cold_litert", "tensorflow": "cold_tf"}.get(cold["engine"])
        if key:
            out[key] = cold["cold_start_s"]["median"]
        if cold["engine"] == "tensorflow":
            out["rss_predict_tf"] = cold["peak_rss_mb"]
    if predict:
        out["hot_fdk"] = predict["hot_fdk"]["latency_ms"]["p50"]
        out["hot_bare"] = predict["bare_invoke"]["latency_ms"]["p50"]
        out["overhead_fdk"] = predict["overhead_ms"]["p50_per_call"]
        out["overhead_fdk_diff"] = out["hot_fdk"] - out["hot_bare"]
        out["b32_fdk"] = predict["hot_fdk"]["batch32_img_per_s"]
        out["b32_bare"] = predict["bare_invoke"]["batch32_img_per_s"]
        out["b1_fdk"] = 1000 / out["hot_fdk"]
        out["b1_bare"] = 1000 / out["hot_bare"]
        out["rss_predict_litert"] = predict["hot_fdk"]["peak_rss_mb"]
    if base:
        out["cold_flask"] = _median(base["cold_start_s"])
        out["hot_flask_predict"] = _median(base["hot_predict_ms"])
        out["hot_flask_on_batch"] = _median(base["hot_predict_on_batch_ms"])
        out["b1_flask"] = 1000 / out["hot_flask_on_batch"]
        out["b32_flask"] = _median(base["batch32_images_per_s"])
        out["rss_flask"] = base["peak_rss_mb"]
    if pre:
        out["pre_12mp_draft"] = pre["jpeg_12mp_draft_ms_p50"]
        out["pre_12mp_full"] = pre["jpeg_12mp_full_decode_resize_ms_p50"]
        out["pre_640"] = pre["jpeg_640x480_ms_p50"]
        out["rss_preprocess"] = pre.get("fdk_peak_rss_mb")
        out["bytes_binary"] = pre["bytes_per_image"]["batch_8"]["binary_uint8"]
        out["bytes_json"] = pre["bytes_per_image"]["batch_8"]["json_float32"]
    if fnl:
        out["fnlocal_added"] = fnl["added_p50_ms"]
    if e2e:
        out["e2e_p50"] = e2e["upload_to_result"]["visible_ms"]["median"]
        out["e2e_p95"] = e2e["upload_to_result"]["visible_ms"]["p95"]
        out["hot_fnlocal"] = e2e["predict_via_fnlocal"]["latency_ms"]["median"]
        out["backfill"] = e2e["backfill"]["images_per_s"]
        out["bare_ips"] = e2e["bare_model"]["images_per_s"]["median"]
    return out
