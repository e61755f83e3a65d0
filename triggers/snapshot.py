"""Where the bucket watcher keeps its `{key: ETag}` snapshot: a local file or an object in the store."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fnvision_common.s3client import is_not_found

from triggers.events import JSON

Snapshot = dict[str, str]


class SnapshotStore(Protocol):
    """Where the watcher keeps its `{key: ETag}` snapshot between polls and restarts."""

    def load(self) -> Snapshot:
        """Return the saved snapshot ({} if none yet)."""
        ...

    def save(self, snapshot: Snapshot) -> None:
        """Replace the saved snapshot atomically."""
        ...


def _encode(snapshot: Snapshot) -> bytes:
    return json.dumps({"schema": "fn-vision/watcher-snapshot@1", "objects": snapshot},
                      ensure_ascii=False, sort_keys=True).encode()


def _decode(data: bytes) -> Snapshot:
    objects = json.loads(data).get("objects", {})
    return {str(k): str(v) for k, v in objects.items()}


@dataclass
class FileSnapshot:
    """Snapshot in a local JSON file, replaced atomically (temp file + fsync + rename)."""

    path: Path

    def load(self) -> Snapshot:
        try:
            return _decode(self.path.read_bytes())
        except FileNotFoundError:
            return {}

    def save(self, snapshot: Snapshot) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_encode(snapshot))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class ObjectSnapshot:
    """Snapshot as one object in the store (e.g. the results bucket); a PUT replaces it atomically."""

    client: Any
    bucket: str
    key: str

    def load(self) -> Snapshot:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return {}
            raise
        return _decode(body)

    def save(self, snapshot: Snapshot) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=_encode(snapshot),
                               ContentType=JSON)
