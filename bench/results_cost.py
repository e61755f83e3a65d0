"""What the result index costs: requests and bytes to record one result, and to list 50 by label.

    .venv/bin/python bench/results_cost.py [--records 10]

Against a real SeaweedFS: records results shaped like the pipeline's (five labels, a key two folders
deep) through predict's own writer (predict_core.results.record with the index), one failure record
through the same protocol, then lists by label with the results function's own Lister, counting every
S3 request and the bytes of each PUT body (botocore's before-send event); and the median time to record
one result with and without the index. The README's "Cost" table
holds the figures from this script and, for 100,000 stored results, what the design makes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions" / "predict"), str(REPO / "functions" / "results")]

from fnvision_common import result_index as ri  # noqa: E402
from predict_core.codecs.base import Label, Source  # noqa: E402
from predict_core.results import S3ResultStore, build_document, record  # noqa: E402
from results_core.listing import Lister  # noqa: E402
from results_core.query import parse_query  # noqa: E402
from results_core.store import S3Reader  # noqa: E402

from devstack.seaweedfs import SeaweedFS, find_free_base  # noqa: E402

MODEL = {"name": "efficientnet-lite0", "version": "1.0.0", "digest": "sha256:" + "0" * 64, "engine": "litert"}
LABELS = ["tiger cat", "tabby", "Egyptian cat", "lynx", "window screen", "espresso", "cup", "daisy"]


class Requests:
    """Counts S3 requests by operation, and PUT body bytes."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.put_bytes = 0
        self.key_bytes = 0

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> None:
        self.ops[event_name.rsplit(".", 1)[-1] or request.method] += 1
        if request.method == "PUT":
            self.put_bytes += int(request.headers.get("Content-Length") or 0)
            self.key_bytes += len(unquote(urlsplit(request.url).path).split("/", 2)[-1].encode())

    def reset(self) -> dict[str, Any]:
        out = {"requests": sum(self.ops.values()), "by_operation": dict(self.ops), "put_body_bytes": self.put_bytes,
               "put_key_bytes": self.key_bytes}
        self.ops.clear()
        self.put_bytes = self.key_bytes = 0
        return out


def _metadata(i: int) -> dict[str, Any]:
    return {"source": {"size": 120_000 + i, "content_type": "image/jpeg", "event_time": "2026-11-21T12:00:00Z",
                       "event_type": "com.oraclecloud.objectstorage.createobject", "origin": "filer"},
            "image": {"format": "JPEG", "width": 640, "height": 480, "sha256": f"{i:064x}", "mode": "RGB",
                      "bytes": 120_000},
            "exif": {"datetime_original": None, "make": None, "model": None, "orientation": 1, "gps": None}}


def _record_times(store: S3ResultStore, start: datetime, n: int = 30) -> dict[str, float]:
    """Median ms to record one result: the document alone, and indexed with predict's 4 writers."""
    from concurrent.futures import ThreadPoolExecutor

    out = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        ways = (("document_only", None, map), ("indexed_4_writers", store, pool.map),
                ("indexed_sequential", store, map))
        for name, index, run in ways:
            times = []
            for i in range(n):
                source = Source("images", f"timing/{name}/photo-{i:05d}.jpg", f"{i:032x}", _metadata(i))
                labels = [Label(j, LABELS[(i + j) % len(LABELS)], 0.5 / (j + 1)) for j in range(5)]
                doc = build_document(source, labels, MODEL, {}, "01JCALL", False, start)
                began = time.perf_counter()
                record(store, "results", "", source, MODEL, doc, index, run)
                times.append((time.perf_counter() - began) * 1000)
            out[name] = round(statistics.median(times[3:]), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, SeaweedFS(data_dir=Path(tmp), base_port=find_free_base(),
                                                          buckets=("images", "results")) as server:
        client = server.client()
        count = Requests()
        client.meta.events.register("before-send.s3", count)
        store = S3ResultStore(client)
        start = datetime.now(UTC)
        per_record = []
        for i in range(args.records):
            labels = [Label(j, LABELS[(i + j) % len(LABELS)], 0.5 / (j + 1)) for j in range(5)]
            source = Source("images", f"samples/20261121-121737/photo-{i:05d}.jpg", f"{i:032x}", _metadata(i))
            doc = build_document(source, labels, MODEL, {"inference_ms": 10.0}, "01JCALL", False,
                                 start + timedelta(milliseconds=i))
            outcome = record(store, "results", "", source, MODEL, doc, store)
            assert outcome["status"] == "created", outcome
            per_record.append(count.reset())
        again = record(store, "results", "", source, MODEL, doc, store)
        duplicate = count.reset()
        failed_source = {"bucket": "images", "key": "samples/x/notes.jpg", "etag": "f"}
        failure = {"schema": ri.FAILURE_SCHEMA, "source": failed_source,
                   "error": {"code": "not_an_image", "message": "not an image"}, "stage": "decode",
                   "call_id": "01JCALL", "recorded_at": ri.format_time(start)}
        fkey = "images/samples/x/notes.jpg/f/failure.json"
        ri.write_indexed(store, "results", "", fkey, lambda t: {**failure, "recorded_at": ri.format_time(t)}, start,
                         lambda d: store.put_if_absent("results", fkey, json.dumps(d).encode()))
        failure_cost = count.reset()
        lister = Lister(S3Reader(client), "results", "")
        page = lister.run(parse_query({"label": ["tiger cat"], "label_in": ["topk"], "limit": ["50"]}, 50))
        listing = count.reset()
        top1 = lister.run(parse_query({"label": ["tiger cat"], "limit": ["50"]}, 50))
        listing_top1 = count.reset()
        doc_bytes = len(json.dumps(doc, separators=(",", ":")).encode())
        client.meta.events.unregister("before-send.s3", count)
        timing = _record_times(store, start)
        report = {
            "records": args.records,
            "one_result": per_record[0],
            "document_bytes": doc_bytes,
            "duplicate_reaching_predict": {**duplicate, "status": again["status"]},
            "one_failure_record": failure_cost,
            "list_50_by_label_in_topk": {**listing, "items": len(page.items), "entries_walked": page.walked},
            "list_50_by_label_top1": {**listing_top1, "items": len(top1.items), "entries_walked": top1.walked},
            "record_ms_median": timing,
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
