"""The model manifest (docs/contracts.md §2) and the sha256 checks of the artifacts it lists."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelCorruptError, ModelError

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """One file (tflite) or directory tree (savedmodel) of the model."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What predict needs from manifest.json."""

    name: str
    version: str
    digest: str
    height: int
    width: int
    channels: int
    labels_path: str
    labels_sha256: str
    artifacts: dict[str, Artifact]
    engines: dict[str, dict[str, Any]]

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """Parse manifest.json; raise ModelCorruptError when it is not the documented shape."""
        try:
            doc = json.loads(raw)
            shape = doc["input"]["shape"]
            if len(shape) != 4 or doc["input"].get("layout", "NHWC") != "NHWC":
                raise ValueError(f"input shape {shape} is not NHWC")
            artifacts = {
                kind: Artifact(path=str(spec["path"]), sha256=str(spec["sha256"]))
                for kind, spec in doc["artifacts"].items()
            }
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                digest=str(doc["digest"]),
                height=int(shape[1]),
                width=int(shape[2]),
                channels=int(shape[3]),
                labels_path=str(doc["labels"]["path"]),
                labels_sha256=str(doc["labels"]["sha256"]),
                artifacts=artifacts,
                engines={str(k): dict(v) for k, v in doc.get("engines", {}).items()},
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelCorruptError(f"manifest.json is not a valid model manifest: {exc}") from exc

    def artifact_for(self, engine: str) -> Artifact:
        """Return the artifact an engine serves (engines.<engine>.artifact, else tflite/savedmodel)."""
        default = {"litert": "tflite", "tensorflow": "savedmodel"}[engine]
        kind = str(self.engines.get(engine, {}).get("artifact", default))
        try:
            return self.artifacts[kind]
        except KeyError as exc:
            raise ModelError(f"the manifest lists no {kind!r} artifact for engine {engine}") from exc


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: Path) -> str:
    """Return the hex sha256 of a directory tree, as modelbuild records it.

    For each regular file in sorted POSIX relative-path order: ``<relpath> NUL <size> NUL <contents>``.
    """
    h = hashlib.sha256()
    for rel in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def path_sha256(path: Path) -> str:
    """Return the sha256 of a file or of a directory tree."""
    return tree_sha256(path) if path.is_dir() else file_sha256(path)


def verify(path: Path, expected: str, what: str) -> None:
    """Raise ModelCorruptError unless the file/tree at path has the expected sha256 (ModelError if missing)."""
    _require(path, what)
    actual = path_sha256(path)
    if actual != expected.removeprefix("sha256:"):
        raise ModelCorruptError(
            f"model artifact {what} ({path.name}) has sha256 {actual[:16]}..., "
            f"the manifest says {expected.removeprefix('sha256:')[:16]}...: refusing to serve it"
        )


def _require(path: Path, what: str) -> None:
    if not path.exists():
        hint = ""
        if what == "tensorflow":
            hint = (
                " (the default image leaves the SavedModel out: to serve MODEL_ENGINE=tensorflow, add"
                " tensorflow-cpu to requirements.txt and remove its line from .dockerignore, see README.md)"
            )
        raise ModelError(f"model artifact {what} is missing: {path}{hint}")


def check_files(directory: Path, manifest: Manifest, engine: str, hashes: bool = True) -> Artifact:
    """Check what this engine serves (its artifact, plus the labels) and return its artifact.

    Artifacts of other engines are not looked at: the default image ships the .tflite alone.
    Missing files raise ModelError; with ``hashes``, a sha256 that differs raises ModelCorruptError.
    """
    artifact = manifest.artifact_for(engine)
    for path, expected, what in (
        (directory / manifest.labels_path, manifest.labels_sha256, "labels"),
        (directory / artifact.path, artifact.sha256, engine),
    ):
        if hashes:
            verify(path, expected, what)
        else:
            _require(path, what)
    return artifact
