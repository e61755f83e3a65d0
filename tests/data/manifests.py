"""Small but complete model manifests (the documented shape, docs/contracts.md §2) for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def manifest_doc(name: str = "m", version: str = "1", size: int = 224, input_name: str = "images",
                 resize_shorter: int | None = None) -> dict[str, Any]:
    """A manifest document with every key the readers need and no real artifact behind it."""
    pre = {"center_crop": size, **({"resize_shorter_to": resize_shorter} if resize_shorter else {})}
    return {
        "name": name, "version": version, "digest": "sha256:00",
        "input": {"name": input_name, "shape": [None, size, size, 3], "layout": "NHWC", "preprocessing": pre},
        "labels": {"path": "labels.json", "sha256": "00"}, "artifacts": {},
    }


def write_manifest(path: Path, **kwargs: Any) -> Path:
    """Write ``manifest_doc(**kwargs)`` to ``path``; return the path."""
    path.write_text(json.dumps(manifest_doc(**kwargs)))
    return path
