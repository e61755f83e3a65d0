"""Upload photos into the running stack and wait for their results: the body of `make run`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnvision_common.manifest import MANIFEST_NAME, Manifest
from fnvision_common.result_keys import failure_key, result_key
from fnvision_common.s3client import is_not_found, normalise_etag


@dataclass(frozen=True)
class Upload:
    """One object put into the input bucket, with the moment the PUT returned."""

    key: str
    etag: str
    uploaded_at: float


@dataclass(frozen=True)
class Outcome:
    """What became of one upload: a result document, a failure record, or nothing in time."""

    upload: Upload
    status: str
    """`result`, `failure` or `timeout`."""
    result_key: str
    document: dict[str, Any] | None
    latency_s: float | None

    def top(self) -> tuple[str, float] | None:
        """(label, score) of the best prediction, if there is a result."""
        if self.document is None or self.status != "result":
            return None
        best = self.document["predictions"][0]
        return str(best["label"]), float(best["score"])


def upload_files(client: Any, bucket: str, files: Sequence[Path], prefix: str) -> list[Upload]:
    """PUT each file under prefix/<file name> and note its ETag and time."""
    uploads = []
    for path in files:
        key = f"{prefix}{path.name}"
        content_type = "image/jpeg" if path.suffix.lower() in {".jpg", ".jpeg"} else "application/octet-stream"
        reply = client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
        uploads.append(Upload(key=key, etag=normalise_etag(reply["ETag"]), uploaded_at=time.monotonic()))
    return uploads


def _get_json(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    doc: dict[str, Any] = json.loads(body)
    return doc


def wait_for_results(
    client: Any,
    uploads: Sequence[Upload],
    *,
    input_bucket: str,
    results_bucket: str,
    results_prefix: str,
    model_name: str,
    model_version: str,
    timeout_s: float = 120.0,
    poll_s: float = 0.02,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Poll the results bucket until every upload has a result or a failure record (or time runs out).

    Latency is measured to the first poll that sees the document, so it overestimates by at most
    one poll interval plus one GET.
    """
    pending = {u.key: u for u in uploads}
    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for key, upload in list(pending.items()):
            rkey = result_key(results_prefix, input_bucket, key, upload.etag, model_name, model_version)
            doc = _get_json(client, results_bucket, rkey)
            status = "result"
            if doc is None:
                fkey = failure_key(results_prefix, input_bucket, key, upload.etag)
                doc = _get_json(client, results_bucket, fkey)
                status, rkey = "failure", fkey
            if doc is not None:
                outcome = Outcome(upload, status, rkey, doc, time.monotonic() - upload.uploaded_at)
                outcomes[key] = outcome
                del pending[key]
                if on_done:
                    on_done(outcome)
        if pending:
            time.sleep(poll_s)
    for key, upload in pending.items():
        rkey = result_key(results_prefix, input_bucket, key, upload.etag, model_name, model_version)
        outcomes[key] = Outcome(upload, "timeout", rkey, None, None)
        if on_done:
            on_done(outcomes[key])
    return [outcomes[u.key] for u in uploads]


def read_manifest(model_dir: Path) -> Manifest:
    """The model manifest (name and version decide the result keys)."""
    path = model_dir / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make model` first")
    return Manifest.read(path)
