"""Measure the Flask + Keras BASELINE (bench/baselines/flask_keras_service.py) on the same model.

Same weights (EfficientNet-Lite0 rebuilt in Keras by `modelbuild`, saved once as `.keras`), same
thread count (2), same input (`.npy` uint8 batches over HTTP). Figures:
- cold start: process spawn → first `/predict` answer (includes `import tensorflow`);
- hot latency batch 1: `model.predict` (what the seeds did) and `predict_on_batch` (best practice);
- batch-32 throughput (`predict_on_batch`);
- peak RSS of the service process (VmHWM).

Run: `.venv/bin/python bench/baseline_bench.py`
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.ports import free_port  # noqa: E402

SERVICE = REPO / "bench" / "baselines" / "flask_keras_service.py"
CACHE = REPO / ".local" / "bench"


def keras_model_path() -> Path:
    """Build (once) the Keras model from the packaged weights, as the baseline would ship it."""
    target = CACHE / "efficientnet_lite0.keras"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    code = (
        "from modelbuild.legacy_pth import read_state_dict\n"
        "from modelbuild.catalog import weights_path\n"
        "from modelbuild import efficientnet_lite as e\n"
        "m = e.build_model(); e.load_state_dict(m, read_state_dict(weights_path()))\n"
        f"m.save({str(target)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return target


def _npy(batch: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, batch)
    return buffer.getvalue()


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post(port: int, body: bytes, mode: str = "") -> float:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", f"/predict{'?mode=' + mode if mode else ''}", body=body,
                 headers={"Content-Type": "application/x-npy"})
    reply = conn.getresponse()
    reply.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if reply.status != 200:
        raise RuntimeError(f"baseline answered {reply.status}")
    return elapsed


def cold_start(model: Path, one: bytes) -> tuple[float, subprocess.Popen[bytes], int]:
    """Spawn the service and time until its first prediction comes back; returns the live process."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(SERVICE), "--model", str(model), "--port", str(port), "--threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    while True:
        if proc.poll() is not None:
            raise RuntimeError("baseline service exited during start")
        try:
            _post(port, one)
            break
        except (ConnectionRefusedError, OSError):
            time.sleep(0.02)
    return time.perf_counter() - started, proc, port


def run(cold_repeats: int = 3, hot_n: int = 40, batch_repeats: int = 5) -> dict[str, Any]:
    """Cold starts (fresh processes), then hot latencies and throughput on the last process."""
    import numpy as np

    from modelbuild.photos import preprocess, sample_photos

    model = keras_model_path()
    image = preprocess(sample_photos(["chelsea"])[0].image())
    one = _npy(image[None])
    batch32 = _npy(np.repeat(image[None], 32, axis=0))
    colds = []
    proc = None
    for i in range(cold_repeats):
        seconds, proc, port = cold_start(model, one)
        colds.append(seconds)
        if i < cold_repeats - 1:
            proc.terminate()
            proc.wait()
    assert proc is not None
    try:
        for _ in range(3):
            _post(port, one)
            _post(port, one, "predict_on_batch")
        predict = [_post(port, one) * 1000 for _ in range(hot_n)]
        on_batch = [_post(port, one, "predict_on_batch") * 1000 for _ in range(hot_n)]
        _post(port, batch32, "predict_on_batch")
        rates = [32 / _post(port, batch32, "predict_on_batch") for _ in range(batch_repeats)]
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return {
        "cold_start_s": colds,
        "hot_predict_ms": predict,
        "hot_predict_on_batch_ms": on_batch,
        "batch32_images_per_s": rates,
        "peak_rss_mb": rss,
    }


def main() -> int:
    result = run()
    print("Flask + Keras baseline (same model, 2 threads):")
    print(f"  cold start s           {[round(s, 2) for s in result['cold_start_s']]}")
    for key in ("hot_predict_ms", "hot_predict_on_batch_ms"):
        values = result[key]
        print(f"  {key:<24} p50 {statistics.median(values):7.1f}  min {min(values):7.1f}")
    print(f"  batch-32 images/s       median {statistics.median(result['batch32_images_per_s']):.1f}")
    print(f"  peak RSS MiB            {result['peak_rss_mb']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
