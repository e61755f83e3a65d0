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


def write_version(folder: Path, name: str = "m", version: str = "1", files: dict[str, bytes] | None = None,
                  task: str = "regression", size: int = 8) -> Path:
    """A complete v2 version folder (manifest whose sha256s match the files) with placeholder artifacts.

    ``files`` maps artifact kind -> bytes (default: a 5-byte "onnx" file); nothing is a loadable model,
    which is all a repository (listing, ordering, publishing, checksums) needs.
    """
    from fnvision_common.manifest import Artifact, Labels, Manifest, TensorSpec, file_sha256, primary_artifact

    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for kind, data in (files or {"onnx": b"model"}).items():
        rel = f"model.{kind}"
        (folder / rel).write_bytes(data)
        artifacts[kind] = Artifact(rel, file_sha256(folder / rel), len(data))
    labels = None
    outputs = (TensorSpec("dense_1", (None, 52)),)
    if task == "classification":
        (folder / "labels.json").write_text(json.dumps(["a", "b"]))
        labels = Labels("labels.json", file_sha256(folder / "labels.json"), 2)
        outputs = (TensorSpec("probabilities", (None, 2), activation="softmax"),)
    manifest = Manifest(
        name=name, version=version, digest=f"sha256:{artifacts[primary_artifact(artifacts)].sha256}", task=task,
        inputs=(TensorSpec("images", (None, size, size, 3), "float32", "NHWC"),), outputs=outputs, labels=labels,
        artifacts=artifacts,
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder
