"""sha256 digests of files and directory trees, as recorded in ``manifest.json``."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256", "tree_files", "tree_sha256"]

_CHUNK = 1 << 20


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
