"""The model manifest (docs/contracts.md §2): the one reader, and the digests it records.

``modelbuild`` writes ``manifest.json``; predict serves from it (and checks the sha256 of what it
loads), preprocess learns the input it must build from it, and backfill, devstack and the bench
read the model's name and version from it. They all read it here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


class ManifestError(ValueError):
    """The manifest is missing, not JSON, or not the documented shape (callers map it to their errors)."""


@dataclass(frozen=True)
class Artifact:
    """One file (tflite) or directory tree (savedmodel) of the model."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What the functions and tools read from manifest.json."""

    name: str
    version: str
    digest: str
    input_name: str
    height: int
    width: int
    channels: int
    resize_shorter: int | None
    """``input.preprocessing.resize_shorter_to``: shorter side before the centre crop (None: not given)."""
    center_crop: int | None
    labels_path: str
    labels_sha256: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """Parse manifest.json text; ManifestError when it is not the documented shape."""
        try:
            doc = json.loads(raw)
            spec = doc["input"]
            shape = spec["shape"]
            if len(shape) != 4 or spec.get("layout", "NHWC") != "NHWC":
                raise ValueError(f"input shape {shape} is not NHWC")
            prep = spec.get("preprocessing") or {}
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                digest=str(doc["digest"]),
                input_name=str(spec.get("name") or "images"),
                height=int(shape[1]),
                width=int(shape[2]),
                channels=int(shape[3]),
                resize_shorter=int(prep["resize_shorter_to"]) if prep.get("resize_shorter_to") else None,
                center_crop=int(prep["center_crop"]) if prep.get("center_crop") else None,
                labels_path=str(doc["labels"]["path"]),
                labels_sha256=str(doc["labels"]["sha256"]),
                artifacts={
                    str(kind): Artifact(path=str(a["path"]), sha256=str(a["sha256"]))
                    for kind, a in doc["artifacts"].items()
                },
                engines={str(k): dict(v) for k, v in doc.get("engines", {}).items()},
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ManifestError(f"not a valid model manifest: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read a manifest file, or the ``manifest.json`` of a model folder."""
        file = path / MANIFEST_NAME if path.is_dir() else path
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read {file}: {exc.strerror or exc}") from exc
        try:
            return cls.from_json(raw)
        except ManifestError as exc:
            raise ManifestError(f"{file}: {exc}") from exc

    @property
    def model_id(self) -> str:
        """``name@version``: how results and logs name the model."""
        return f"{self.name}@{self.version}"


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_files(root: str | Path) -> list[str]:
    """Return the POSIX relative paths of every regular file under root, sorted."""
    base = Path(root)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def tree_sha256(root: str | Path) -> str:
    """Return the hex sha256 of a directory tree.

    For each regular file in sorted POSIX relative-path order the hash is fed
    ``<relpath> NUL <size in decimal> NUL <contents>``; the size makes the encoding unambiguous,
    so moving bytes between files or renaming a file changes the digest.
    """
    base = Path(root)
    h = hashlib.sha256()
    for rel in tree_files(base):
        data = (base / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def path_sha256(path: Path) -> str:
    """Return the sha256 of a file or of a directory tree."""
    return tree_sha256(path) if path.is_dir() else file_sha256(path)
