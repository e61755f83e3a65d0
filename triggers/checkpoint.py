"""The backfill checkpoint: which object versions one backfill already handed to preprocess.

A JSON-lines file, append-only and fsync'ed after each batch, so a killed run loses at most the
batches in flight (a torn last line is ignored). The first line names the bucket and model; a
checkpoint of another bucket or model is refused. Each following line is one object version:

    {"key": "<object key>", "etag": "<ETag>", "state": "done" | "submitted"}

* `done`: preprocess answered the call (2xx) itself, so its result or failure record is written.
* `submitted`: a detached call (`--detached`) that Fn acknowledged without the function's answer:
  202 before the function runs (OCI Functions, fnlocal) or 200 with an empty body after it ran (a
  self-hosted Fn server). Either way the function may have failed, so a resumed run does **not**
  trust it: it skips the object only if its result (or failure record) now exists, and sends it
  again otherwise (`--trust-checkpoint` skips it anyway). Lines without `state` (older checkpoints)
  are `done`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from fnvision_common.manifest import Manifest, ManifestError
from fnvision_common.objects import ObjectRef

CHECKPOINT_SCHEMA = "fn-vision/backfill-checkpoint@1"
DONE: Literal["done"] = "done"
SUBMITTED: Literal["submitted"] = "submitted"
State = Literal["done", "submitted"]
Ident = tuple[str, str]
"""(key, etag) of one object version."""


class BackfillError(RuntimeError):
    """The run cannot start (bad arguments, a checkpoint from another run)."""


@dataclass(frozen=True)
class Model:
    name: str
    version: str

    @classmethod
    def from_manifest(cls, path: Path) -> Model:
        """Read name and version from predict's model manifest."""
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            raise BackfillError(f"cannot read model name/version: {exc}") from exc
        return cls(manifest.name, manifest.version)


class Checkpoint:
    """Append-only JSON-lines record of handed-over `(key, etag)` pairs for one bucket and model."""

    def __init__(self, path: Path, bucket: str, model: Model) -> None:
        self.path = path
        self.header = {"schema": CHECKPOINT_SCHEMA, "bucket": bucket, "model": f"{model.name}@{model.version}"}
        self.done: set[Ident] = set()
        """Versions preprocess answered for: skipped by a resumed run."""
        self.submitted: set[Ident] = set()
        """Versions sent detached (acknowledged, outcome unknown) and not yet seen done: re-checked on resume."""
        self._lock = threading.Lock()
        self._out: TextIO | None = None

    def load(self) -> Checkpoint:
        """Read an existing checkpoint (a torn last line from a kill is ignored)."""
        if not self.path.exists():
            return self
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if lines:
            header = json.loads(lines[0])
            if header != self.header:
                raise BackfillError(f"checkpoint {self.path} belongs to another run ({header}); "
                                    "use --fresh or another --checkpoint")
        for line in lines[1:]:
            try:
                item = json.loads(line)
                self._note((item["key"], item["etag"]), item.get("state", DONE))
            except (ValueError, KeyError, TypeError):
                continue
        return self

    def _note(self, ident: Ident, state: str) -> None:
        if state == SUBMITTED:
            if ident not in self.done:
                self.submitted.add(ident)
        else:
            self.submitted.discard(ident)
            self.done.add(ident)

    def add(self, refs: Iterable[ObjectRef], state: State = DONE) -> None:
        """Record handed-over objects durably."""
        with self._lock:
            if self._out is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                new = not self.path.exists() or self.path.stat().st_size == 0
                self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                if new:
                    self._out.write(json.dumps(self.header) + "\n")
            for ref in refs:
                line = {"key": ref.key, "etag": ref.etag, "state": state}
                self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
                self._note((ref.key, ref.etag), state)
            self._out.flush()
            os.fsync(self._out.fileno())

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
