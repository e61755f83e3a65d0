"""Which SeaweedFS filer events count as a completed object version, and the `notification.toml`
that makes the filer post them.

What the filer sends, and how a payload reads (bucket, raw key, ETag, size, kind of change, internal
paths), is `fnvision_common.filer_events`, shared with preprocess's recogniser of filer webhooks. The
`notification.toml` (`notification_toml()` writes one; `SeaweedFS(workdir=...)` runs weed where it is)
asks for create, update and rename events under `/buckets/`.

`parse_filer_event` keeps one change per completed object version: it drops deletes, events without
a new entry, SeaweedFS's internal paths (directories, `.uploads/` parts, `.system`, `*.versions/`),
the results area, buckets not watched, the readiness probe devstack writes and deletes
(`<bucket>/.fn-vision-ready`), and `update`s whose ETag did not change (metadata-only). An event
without an ETag is reported with '' (the adapter then asks S3 with a HEAD).

`triggers.filer_adapter` is the HTTP receiver that turns each change into a CloudEvent for preprocess.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnvision_common.filer_events import OBJECT_CHANGES, read_filer_event
from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import is_results_location

from triggers.events import OCI_CREATE, OCI_UPDATE

IGNORED_BASENAMES = frozenset({".fn-vision-ready"})


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
    """Return the object change in a filer event, or a short reason why it is ignored.

    Raises `FilerEventError` for a payload with a field of the wrong JSON type.
    """
    event = read_filer_event(payload)
    if event.kind not in OBJECT_CHANGES:
        return f"event {event.kind or None}"
    if not event.has_entry:
        return "no new entry"
    if event.internal:
        return event.internal
    if event.key.split("/")[-1] in IGNORED_BASENAMES:
        return "readiness probe"
    if buckets is not None and event.bucket not in buckets:
        return "bucket not watched"
    if is_results_location(event.bucket, event.key, results_bucket, results_prefix):
        return "results area"
    if event.kind == "update" and event.etag and event.old_etag == event.etag:
        return "metadata-only update"
    return FilerChange(OCI_UPDATE if event.kind == "update" else OCI_CREATE, event.ref())
