"""End-to-end figures of the local stack, from one run.

1. upload → result latency (hot): 640×480 JPEGs, one at a time, through SeaweedFS → filer webhook →
   adapter → fnlocal → preprocess → predict → result document. Two clocks:
   - `visible`: PUT returned → the result document can be read (HEAD polled every 2 ms);
   - `recorded`: PUT returned → the `recorded_at` stamp predict writes into the document.
2. backfill throughput: N objects already stored, sent by `triggers.backfill` through preprocess
   and predict, in images/s, beside the bare model's throughput (LiteRT `invoke`, batch 32,
   in-process) measured in the same run, after the stack has stopped so they don't share the CPUs.

Run: `.venv/bin/python bench/e2e_bench.py [--latency-n 40] [--backfill-n 500]`
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions" / "predict")]

MODEL_DIR = REPO / "functions" / "predict" / "model"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(values: list[float]) -> dict[str, float]:
    """min / median / p95 / max of a sample, in its own unit."""
    return {"n": len(values), "min": min(values), "median": statistics.median(values),
            "p95": _pct(values, 0.95), "max": max(values)}


def photos_640x480() -> list[bytes]:
    """The shipped sample photos, resized/cropped to 640×480 and encoded as JPEG (quality 90)."""
    from PIL import ImageOps

    from modelbuild.photos import sample_photos

    out = []
    for photo in sample_photos():
        image = ImageOps.fit(photo.image().convert("RGB"), (640, 480))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _wait_visible(client: Any, bucket: str, key: str, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client.head_object(Bucket=bucket, Key=key)
            return time.monotonic()
        except Exception:
            time.sleep(0.002)
    raise TimeoutError(f"no result at {bucket}/{key} after {timeout_s}s")


def measure_latency(stack: Any, manifest: Any, jpegs: list[bytes], n: int, warmup: int) -> dict:
    from fnvision_common.result_keys import result_key
    from fnvision_common.s3client import normalise_etag

    client = stack.seaweed.client()
    visible, recorded = [], []
    for i in range(warmup + n):
        key = f"bench/latency/{i:04d}.jpg"
        put = client.put_object(Bucket="images", Key=key, Body=jpegs[i % len(jpegs)], ContentType="image/jpeg")
        put_done, put_wall = time.monotonic(), time.time()
        rkey = result_key("", "images", key, normalise_etag(put["ETag"]), manifest.name, manifest.version)
        seen = _wait_visible(client, "results", rkey)
        doc = json.loads(client.get_object(Bucket="results", Key=rkey)["Body"].read())
        if i < warmup:
            continue
        visible.append((seen - put_done) * 1000)
        stamp = datetime.fromisoformat(doc["recorded_at"].replace("Z", "+00:00")).timestamp()
        recorded.append((stamp - put_wall) * 1000)
    return {"visible_ms": summarize(visible), "recorded_ms": summarize(recorded)}


def measure_predict_via_fnlocal(stack: Any, jpegs: list[bytes], n: int = 60) -> dict:
    """Hot latency of one-image `.npy` calls to predict through fnlocal's /invoke (HTTP → socket → fdk)."""
    import http.client
    from urllib.parse import urlsplit

    import numpy as np
    from PIL import Image, ImageOps

    tensor = np.asarray(ImageOps.fit(Image.open(io.BytesIO(jpegs[0])).convert("RGB"), (224, 224)), dtype=np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, tensor[None])
    body = buffer.getvalue()
    url = urlsplit(stack.fnlocal.invoke_url("vision", "predict"))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    times = []
    for i in range(n + 5):
        started = time.perf_counter()
        conn.request("POST", url.path, body=body, headers={"Content-Type": "application/x-npy"})
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"predict via fnlocal answered {reply.status}")
        if i >= 5:
            times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return {"latency_ms": summarize(times)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads), from /proc."""
    import os

    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(stack: Any) -> dict[str, float]:
    """CPU seconds so far of each part of the stack: SeaweedFS, each function's containers, this process."""
    import os

    user, system = os.times()[:2]
    times = {"seaweedfs": _cpu_seconds(stack.seaweed.pid), "bench process (fnlocal, adapter, client)": user + system}
    for fn in stack.fnlocal.status()["functions"]:
        times[f"{fn['name']} containers"] = sum(_cpu_seconds(c["pid"]) for c in fn["containers"])
    return times


def measure_backfill(stack: Any, manifest: Any, jpegs: list[bytes], n: int,
                     batch_size: int, concurrency: int) -> dict:
    from triggers.backfill import Backfill, Model
    from triggers.invoker import HttpInvoker

    client = stack.seaweed.client()
    client.create_bucket(Bucket="bulk")
    for i in range(n):
        client.put_object(Bucket="bulk", Key=f"objects/{i:05d}.jpg", Body=jpegs[i % len(jpegs)],
                          ContentType="image/jpeg")
    backfill = Backfill(
        client=client, invoker=HttpInvoker(stack.fnlocal.invoke_url("vision", "preprocess")),
        bucket="bulk", model=Model(manifest.name, manifest.version), batch_size=batch_size,
        concurrency=concurrency, progress=False,
    )
    cpu_before = cpu_by_role(stack)
    started = time.monotonic()
    summary = backfill.run()
    wall = time.monotonic() - started
    cpu_after = cpu_by_role(stack)
    per_image = {role: round((cpu_after[role] - cpu_before.get(role, 0.0)) * 1000 / max(1, summary.processed), 2)
                 for role in cpu_after}
    return {"objects": n, "processed": summary.processed, "failed": summary.failed,
            "batch_size": batch_size, "concurrency": concurrency, "wall_s": wall,
            "plan_s": wall - summary.send_s,
            "images_per_s": summary.processed / wall if wall else 0.0,
            "send_images_per_s": summary.images_per_s,
            "cpu_ms_per_image": per_image}


def bare_model_throughput(jpegs: list[bytes], batch: int = 32, repeats: int = 5) -> dict:
    """LiteRT `invoke` on preprocessed batches, in-process: the floor for images/s."""
    import numpy as np
    from PIL import Image, ImageOps
    from predict_core.model import LiteRTEngine

    tensors = [np.asarray(ImageOps.fit(Image.open(io.BytesIO(j)).convert("RGB"), (224, 224)), dtype=np.uint8)
               for j in jpegs]
    data = np.stack([tensors[i % len(tensors)] for i in range(batch)])
    engine = LiteRTEngine(MODEL_DIR / "efficientnet_lite0.tflite", num_threads=2)
    engine.predict(data)  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.predict(data)
        rates.append(batch / (time.perf_counter() - started))
    return {"batch": batch, "images_per_s": summarize(rates)}


def run(latency_n: int = 40, warmup: int = 5, backfill_n: int = 500, batch_size: int = 16,
        concurrency: int = 2) -> dict:
    """Start a private stack on free ports, measure, stop it, then measure the bare model."""
    from devstack.pipeline import read_manifest
    from devstack.ports import free_port
    from devstack.seaweedfs import find_free_base
    from devstack.stack import LocalStack, StackOptions

    manifest = read_manifest(MODEL_DIR)
    jpegs = photos_640x480()
    with tempfile.TemporaryDirectory() as tmp:
        options = StackOptions(root=REPO, data_dir=Path(tmp), s3_base_port=find_free_base(),
                               fn_port=free_port(), source="filer", function_log=Path(tmp) / "fn.log")
        with LocalStack(options) as stack:
            latency = measure_latency(stack, manifest, jpegs, latency_n, warmup)
            via_fnlocal = measure_predict_via_fnlocal(stack, jpegs)
            backfill = measure_backfill(stack, manifest, jpegs, backfill_n, batch_size, concurrency)
    bare = bare_model_throughput(jpegs)
    backfill["ratio_to_bare_median"] = backfill["images_per_s"] / bare["images_per_s"]["median"]
    return {"upload_to_result": latency, "predict_via_fnlocal": via_fnlocal, "backfill": backfill,
            "bare_model": bare}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-n", type=int, default=40)
    parser.add_argument("--backfill-n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    result = run(args.latency_n, backfill_n=args.backfill_n, batch_size=args.batch_size,
                 concurrency=args.concurrency)
    lat = result["upload_to_result"]
    print("upload → result, 640×480 JPEG, hot (ms):")
    for name, s in lat.items():
        print(f"  {name:<12} min {s['min']:7.1f}  median {s['median']:7.1f}  p95 {s['p95']:7.1f}  (n={s['n']})")
    print(f"predict via fnlocal, 1 image: median {result['predict_via_fnlocal']['latency_ms']['median']:.2f} ms")
    b, bare = result["backfill"], result["bare_model"]["images_per_s"]
    print(f"backfill: {b['processed']}/{b['objects']} in {b['wall_s']:.1f}s = {b['images_per_s']:.1f} images/s "
          f"(batch {b['batch_size']}, concurrency {b['concurrency']}, failed {b['failed']})")
    print(f"bare LiteRT batch 32: median {bare['median']:.1f} images/s (min {bare['min']:.1f}, p95 {bare['p95']:.1f})")
    print(f"backfill / bare = {b['ratio_to_bare_median']:.2f}")
    print("CPU per image during backfill (ms): " + ", ".join(f"{k} {v}" for k, v in b["cpu_ms_per_image"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
