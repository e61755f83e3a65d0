"""The model files predict serves, checked against their manifest (read by ``fnvision_common.manifest``).

Only the chosen engine's artifact (and the labels) is looked at: the default image ships the .tflite
alone. Errors are predict's: a manifest that is not the documented shape or a sha256 that differs is
``ModelCorruptError`` (500), a missing file ``ModelError`` (503).
"""

from __future__ import annotations

from pathlib import Path

from fnvision_common.manifest import MANIFEST_NAME, Artifact, Manifest, ManifestError, path_sha256

from .errors import ModelCorruptError, ModelError

__all__ = ["MANIFEST_NAME", "Artifact", "Manifest", "artifact_for", "check_files", "parse", "verify"]

_DEFAULT_ARTIFACT = {"litert": "tflite", "tensorflow": "savedmodel"}


def parse(raw: bytes | str) -> Manifest:
    """Parse manifest.json; ModelCorruptError when it is not the documented shape."""
    try:
        return Manifest.from_json(raw)
    except ManifestError as exc:
        raise ModelCorruptError(f"manifest.json is not a valid model manifest: {exc}") from exc


def artifact_for(manifest: Manifest, engine: str) -> Artifact:
    """The artifact an engine serves (``engines.<engine>.artifact``, else tflite / savedmodel)."""
    kind = str(manifest.engines.get(engine, {}).get("artifact", _DEFAULT_ARTIFACT[engine]))
    try:
        return manifest.artifacts[kind]
    except KeyError as exc:
        raise ModelError(f"the manifest lists no {kind!r} artifact for engine {engine}") from exc


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
                " tensorflow-cpu to requirements.in, run make lock and remove its line from .dockerignore,"
                " see README.md)"
            )
        raise ModelError(f"model artifact {what} is missing: {path}{hint}")


def check_files(directory: Path, manifest: Manifest, engine: str, hashes: bool = True) -> Artifact:
    """Check what this engine serves (its artifact, plus the labels) and return its artifact.

    Missing files raise ModelError; with ``hashes``, a sha256 that differs raises ModelCorruptError.
    """
    artifact = artifact_for(manifest, engine)
    for path, expected, what in (
        (directory / manifest.labels_path, manifest.labels_sha256, "labels"),
        (directory / artifact.path, artifact.sha256, engine),
    ):
        if hashes:
            verify(path, expected, what)
        else:
            _require(path, what)
    return artifact
