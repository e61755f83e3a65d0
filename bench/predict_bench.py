"""Benchmark of the predict function through its real fdk process (figures, not tests).

    .venv/bin/python -m bench.predict_bench [--cold-reps 5] [--hot-calls 300] [--json out.json]

Prints, from one run:
- cold start (process spawn -> first answer through the fdk socket), LiteRT vs TensorFlow engine;
- hot latency p50/p99 of a 1-image call through the fdk socket vs a bare ``interpreter.invoke``
  of the same model in this process, and the difference (the function's overhead);
- batch-32 throughput through the fdk socket (and bare);
- peak RSS (VmHWM) of the predict process per engine.
``run(...)`` returns the same figures as a dict (for ``make bench``).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FUNC = REPO / "functions" / "predict" / "func.py"
MODEL_DIR = REPO / "functions" / "predict" / "model"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(FUNC.parent) not in sys.path:
    sys.path.insert(0, str(FUNC.parent))

from tests.fdkproc import FdkProcess  # noqa: E402


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _images(n: int) -> np.ndarray:
    from modelbuild.photos import preprocess, sample_photos

    photos = np.stack([preprocess(p.image()) for p in sample_photos()])
    return np.concatenate([photos] * (n // len(photos) + 1))[:n]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values) * 1000, 2),
        "p50": round(_pct(values, 50) * 1000, 2),
        "p99": round(_pct(values, 99) * 1000, 2),
        "n": len(values),
    }


def cold_start(engine: str, reps: int, body: bytes) -> dict[str, Any]:
    """Spawn a fresh fdk process per rep and time spawn -> first answer; also its peak RSS."""
    times: list[float] = []
    rss: list[int] = []
    for _ in range(reps):
        with FdkProcess(FUNC, env={"MODEL_ENGINE": engine, "LOG_LEVEL": "WARNING"}) as fn:
            reply = fn.call(body, {"Content-Type": "application/x-npy"})
            times.append(time.perf_counter() - fn.started_at)
            if reply.status != 200 or not reply.json().get("cold_start"):
                raise RuntimeError(f"{engine}: unexpected first reply {reply.status} {reply.body[:200]!r}")
            rss.append(fn.status_kb("VmHWM"))
    return {
        "engine": engine,
        "cold_start_s": {"min": round(min(times), 3), "median": round(statistics.median(times), 3), "n": reps},
        "peak_rss_mb": round(max(rss) / 1024, 1),
    }


def hot_fdk(hot_calls: int, one: bytes, batch32: bytes, batch_reps: int) -> dict[str, Any]:
    """Latency of 1-image calls and throughput of 32-image calls through one hot LiteRT process."""
    headers = {"Content-Type": "application/x-npy"}
    with FdkProcess(FUNC, env={"LOG_LEVEL": "WARNING"}) as fn:
        for _ in range(20):
            fn.call(one, headers)
        latencies: list[float] = []
        inference: list[float] = []
        for _ in range(hot_calls):
            t = time.perf_counter()
            reply = fn.call(one, headers)
            latencies.append(time.perf_counter() - t)
            inference.append(reply.json()["timings"]["inference_ms"] / 1000)
        fn.call(batch32, headers)
        batch: list[float] = []
        for _ in range(batch_reps):
            t = time.perf_counter()
            reply = fn.call(batch32, headers)
            batch.append(time.perf_counter() - t)
            assert reply.status == 200 and len(reply.json()["predictions"]) == 32
        hwm = fn.status_kb("VmHWM")
        rss = fn.status_kb("VmRSS")
    return {
        "latency_ms": _ms(latencies),
        "inference_in_fn_ms": _ms(inference),
        # per call: round trip through the socket minus the invoke time the function itself measured
        "overhead_in_call_ms": _ms([lat - inf for lat, inf in zip(latencies, inference, strict=True)]),
        "batch32_s": {"min": round(min(batch), 3), "median": round(statistics.median(batch), 3)},
        "batch32_img_per_s": round(32 / statistics.median(batch), 1),
        "peak_rss_mb": round(hwm / 1024, 1),
        "rss_after_mb": round(rss / 1024, 1),
    }


def _timed_invokes(interp: Any, x: np.ndarray, warmup: int, runs: int) -> list[float]:
    """Seconds of set_tensor + invoke + get_tensor for `runs` calls on `x`, after `warmup` invokes."""
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    interp.resize_tensor_input(inp, list(x.shape))
    interp.allocate_tensors()
    for _ in range(warmup):
        interp.set_tensor(inp, x)
        interp.invoke()
    times: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        interp.set_tensor(inp, x)
        interp.invoke()
        interp.get_tensor(out)
        times.append(time.perf_counter() - t)
    return times


def bare_invoke(hot_calls: int, one: np.ndarray, batch32: np.ndarray, batch_reps: int) -> dict[str, Any]:
    """The same model with set_tensor + invoke + get_tensor in this process (no fdk, no decoding)."""
    from fnvision_common.manifest import Manifest
    from predict_core.model import LiteRTEngine

    manifest = Manifest.read(MODEL_DIR)
    engine = LiteRTEngine(MODEL_DIR / manifest.artifacts["tflite"].path, 2)
    interp = engine.interpreter
    latencies = _timed_invokes(interp, one.astype(np.float32), warmup=20, runs=hot_calls)
    batch = _timed_invokes(interp, batch32.astype(np.float32), warmup=1, runs=batch_reps)
    return {
        "latency_ms": _ms(latencies),
        "batch32_img_per_s": round(32 / statistics.median(batch), 1),
    }


def run(
    cold_reps: int = 5, tf_cold_reps: int = 2, hot_calls: int = 300, batch_reps: int = 5, tensorflow: bool = True
) -> dict[str, Any]:
    """Measure everything once and return the figures."""
    images = _images(32)
    one, batch32 = images[:1], images
    body_one, body_32 = _npy(one), _npy(batch32)
    cold = [cold_start("litert", cold_reps, body_one)]
    if tensorflow:
        cold.append(cold_start("tensorflow", tf_cold_reps, body_one))
    fdk = hot_fdk(hot_calls, body_one, body_32, batch_reps)
    bare = bare_invoke(hot_calls, one, batch32, batch_reps)
    return {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "cold_start": cold,
        "hot_fdk": fdk,
        "bare_invoke": bare,
        "overhead_ms": {
            "p50_vs_bare": round(fdk["latency_ms"]["p50"] - bare["latency_ms"]["p50"], 2),
            "p99_vs_bare": round(fdk["latency_ms"]["p99"] - bare["latency_ms"]["p99"], 2),
            "p50_per_call": fdk["overhead_in_call_ms"]["p50"],
            "p99_per_call": fdk["overhead_in_call_ms"]["p99"],
        },
        "goals": {"cold_start_litert_s": 0.5, "overhead_ms": 2.0, "peak_rss_mb": 128},
    }


def report(r: dict[str, Any]) -> str:
    """Format the figures as a small table."""
    lines = ["predict bench (EfficientNet-Lite0, fdk over a unix socket, .npy uint8 body)", ""]
    for c in r["cold_start"]:
        cs = c["cold_start_s"]
        lines.append(
            f"cold start  {c['engine']:<10} min {cs['min']:.3f} s  median {cs['median']:.3f} s  "
            f"(n={cs['n']})  peak RSS {c['peak_rss_mb']} MB"
        )
    f, b = r["hot_fdk"], r["bare_invoke"]
    lines += [
        "",
        f"hot 1 image  fdk socket   p50 {f['latency_ms']['p50']:.2f} ms  p99 {f['latency_ms']['p99']:.2f} ms",
        f"hot 1 image  bare invoke  p50 {b['latency_ms']['p50']:.2f} ms  p99 {b['latency_ms']['p99']:.2f} ms",
        f"overhead = fdk - bare     p50 {r['overhead_ms']['p50_vs_bare']:.2f} ms  "
        f"p99 {r['overhead_ms']['p99_vs_bare']:.2f} ms",
        f"overhead per call (round trip - invoke measured inside the function)  "
        f"p50 {r['overhead_ms']['p50_per_call']:.2f} ms  p99 {r['overhead_ms']['p99_per_call']:.2f} ms"
        f"  (goal <= {r['goals']['overhead_ms']} ms)",
        f"batch 32     fdk socket   {f['batch32_img_per_s']} img/s   bare {b['batch32_img_per_s']} img/s",
        f"peak RSS LiteRT process after the hot run (incl. batch 32): {f['peak_rss_mb']} MB"
        f"  (goal <= {r['goals']['peak_rss_mb']} MB)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the figures (optionally also as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-reps", type=int, default=5)
    parser.add_argument("--tf-cold-reps", type=int, default=2)
    parser.add_argument("--hot-calls", type=int, default=300)
    parser.add_argument("--batch-reps", type=int, default=5)
    parser.add_argument("--no-tensorflow", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run(args.cold_reps, args.tf_cold_reps, args.hot_calls, args.batch_reps, not args.no_tensorflow)
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
