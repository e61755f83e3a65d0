"""Burst and duplicate figures of the local stack (reliability issue), "before" and "now" in one run.

1. Burst: N uploads (640x480 JPEGs) PUT at concurrency C into SeaweedFS while the filer adapter and
   the safety-net watcher both run (the `make run` stack). Reported: result documents created,
   duplicate documents, inferences per object (images predict inferred, summed from its logs, / N),
   and the wall time from the first PUT to the moment every result can be listed.
2. Duplicate delivery: the same storage event (with its ETag) delivered again for an object that is
   done: ms per call at preprocess, hot, median of `--dup-n`.
3. New object: the event of a fresh upload (the check's LIST finds nothing): ms per call, median;
   and the LIST alone, timed from the bench process (what the check adds to a new object's path:
   the phases run on separate stacks, so their new-object medians differ by more than that).

"before" runs the stack as it was before the reliability issue (no shared in-flight ledger,
DONE_CHECK_SECONDS=0); "now" as it ships. Each phase has its own stack, so they never share CPUs.

Run: `.venv/bin/python bench/reliability_bench.py [--n 2000] [--concurrency 16] [--phases before,now]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from e2e_bench import photos_640x480  # noqa: E402

PHASES = {
    "before": {"share_in_flight": False, "config": {"DONE_CHECK_SECONDS": "0"}},
    "now": {"share_in_flight": True, "config": {}},
}


def _inferred_images(function_log: Path) -> int:
    """Images predict ran inference on, from its `predicted` log lines."""
    total = 0
    for line in function_log.read_text(errors="replace").splitlines():
        if "/predict " not in line or '"msg": "predicted"' not in line:
            continue
        total += int(json.loads(line[line.index("{"):])["images"])
    return total


def burst(stack: Any, jpegs: list[bytes], n: int, concurrency: int, function_log: Path) -> dict[str, Any]:
    client = stack.seaweed.client()
    inferred_before = _inferred_images(function_log)
    keys = [f"burst/{i:05d}.jpg" for i in range(n)]

    def put(i: int) -> None:
        client.put_object(Bucket="images", Key=keys[i], Body=jpegs[i % len(jpegs)], ContentType="image/jpeg")

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, range(n)))
    uploaded = time.monotonic() - started
    paginator = client.get_paginator("list_objects_v2")
    documents: list[str] = []
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        documents = [o["Key"] for page in paginator.paginate(Bucket="results", Prefix="images/burst/")
                     for o in page.get("Contents", [])]
        if len({d.split("/")[2] for d in documents}) >= n:
            break
        time.sleep(0.25)
    wall = time.monotonic() - started
    time.sleep(3.0)  # let late duplicates (watcher polls) show up in the counts
    documents = [o["Key"] for page in paginator.paginate(Bucket="results", Prefix="images/burst/")
                 for o in page.get("Contents", [])]
    per_object: dict[str, int] = {}
    for doc in documents:
        per_object[doc.split("/")[2]] = per_object.get(doc.split("/")[2], 0) + 1
    inferred = _inferred_images(function_log) - inferred_before
    return {"objects": n, "concurrency": concurrency, "upload_s": round(uploaded, 1), "wall_s": round(wall, 1),
            "results": len(per_object), "documents": len(documents),
            "duplicate_documents": sum(c - 1 for c in per_object.values()),
            "inferences": inferred, "inferences_per_object": round(inferred / n, 3)}


def event_latency(stack: Any, keys: list[str], bucket: str = "images") -> dict[str, Any]:
    """Median ms of one storage event per key, sent straight to preprocess's /invoke."""
    from fnvision_common.objects import ObjectRef

    from triggers.events import s3_records, to_body
    from triggers.invoker import HttpInvoker

    client = stack.seaweed.client()
    invoker = HttpInvoker(stack.fnlocal.invoke_url("vision", "preprocess"))
    times, statuses = [], []
    for key in keys:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        started = time.perf_counter()
        result = invoker.invoke(to_body(s3_records([ObjectRef(bucket, key, etag)])), "application/json")
        times.append((time.perf_counter() - started) * 1000)
        statuses.append(json.loads(result.body)["predictions"][0]["status"])
    return {"median_ms": round(statistics.median(times), 2), "n": len(times),
            "statuses": {s: statuses.count(s) for s in set(statuses)}}


def list_latency(client: Any, prefixes: list[str]) -> float:
    """Median ms of the duplicate check's request (one LIST of a result folder) from this process."""
    times = []
    for prefix in prefixes:
        started = time.perf_counter()
        client.list_objects_v2(Bucket="results", Prefix=prefix, Delimiter="/", MaxKeys=100)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def run_phase(name: str, n: int, concurrency: int, dup_n: int) -> dict[str, Any]:
    from devstack.ports import free_port
    from devstack.seaweedfs import find_free_base
    from devstack.stack import LocalStack, StackOptions

    jpegs = photos_640x480()
    phase = PHASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "fn.log"
        options = StackOptions(root=REPO, data_dir=Path(tmp), s3_base_port=find_free_base(), fn_port=free_port(),
                               source="filer", function_log=log, extra_config=dict(phase["config"]),
                               share_in_flight=bool(phase["share_in_flight"]))
        with LocalStack(options) as stack:
            out: dict[str, Any] = {"burst": burst(stack, jpegs, n, concurrency, log)}
            client = stack.seaweed.client()
            done = [f"burst/{i:05d}.jpg" for i in range(dup_n)]
            event_latency(stack, done[:3])  # warm the connection
            out["duplicate_delivery"] = event_latency(stack, done)
            # Fresh objects in a bucket no event source watches: only our events reach preprocess.
            client.create_bucket(Bucket="quiet")
            fresh = [f"fresh/{i:03d}.jpg" for i in range(dup_n)]
            for i, key in enumerate(fresh):
                client.put_object(Bucket="quiet", Key=key, Body=jpegs[i % len(jpegs)])
            out["new_object"] = event_latency(stack, fresh, bucket="quiet")
            out["check_list_ms"] = list_latency(client, [f"quiet/{key}/nothing/" for key in fresh])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dup-n", type=int, default=30)
    parser.add_argument("--phases", default="before,now")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    results = {}
    for name in args.phases.split(","):
        print(f"phase {name}: burst of {args.n} uploads at concurrency {args.concurrency} ...", flush=True)
        results[name] = run_phase(name, args.n, args.concurrency, args.dup_n)
        b = results[name]["burst"]
        print(f"  results {b['results']}/{b['objects']}, documents {b['documents']}, duplicate documents "
              f"{b['duplicate_documents']}, inferences {b['inferences']} = {b['inferences_per_object']} per object, "
              f"first upload -> last result {b['wall_s']} s (uploads took {b['upload_s']} s)")
        d, f = results[name]["duplicate_delivery"], results[name]["new_object"]
        print(f"  duplicate delivery: median {d['median_ms']} ms {d['statuses']}; "
              f"event of a new object: median {f['median_ms']} ms {f['statuses']}; "
              f"the check's LIST alone: median {results[name]['check_list_ms']} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
