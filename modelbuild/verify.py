"""``vision-model verify``: is a version intact, loadable, and do its engines agree?

For each version: the manifest reads (v2 or v1), every file it lists is there with its sha256, the
labels are a list of ``labels.count`` names, every artifact loads in its engine and runs on the
sample photos (``photos.check_batch``), its outputs have the manifest's names and shapes, and the
artifacts agree with the primary one within the tolerance recorded at build time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fnvision_common.errors import ArtifactCorruptError
from fnvision_common.manifest import MANIFEST_NAME, Manifest, primary_artifact
from fnvision_common.repository import LocalRepository, ModelRef, S3Repository, verify_folder

from modelbuild import agreement
from modelbuild.photos import check_batch

__all__ = ["Verified", "verify_folder_fully", "verify_repository"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Verified:
    """One verified version and how far its artifacts were from the primary one."""

    name: str
    version: str
    digest: str
    max_abs_diff: dict[str, float]


def verify_folder_fully(folder: Path, *, threads: int = 2) -> Verified:
    """Verify one version folder (see the module docstring); raise the FnVisionError that names the fix."""
    manifest = Manifest.read(folder / MANIFEST_NAME)
    verify_folder(folder, manifest)
    where = f"{manifest.name}/{manifest.version}"
    if manifest.labels:
        labels = json.loads((folder / manifest.labels.path).read_text("utf-8"))
        count = manifest.labels.count
        if not isinstance(labels, list) or (count is not None and len(labels) != count):
            raise ArtifactCorruptError(f"{where}: {manifest.labels.path} does not hold {count} names")
    batch = check_batch(manifest.preprocessing, manifest.height, manifest.width, manifest.input.dtype)
    results = agreement.run_artifacts(folder, manifest.artifacts, batch, threads)
    for kind, outputs in results.items():
        for spec in manifest.outputs:
            got = outputs.get(spec.name)
            if got is None:
                raise ArtifactCorruptError(
                    f"{where}: {kind} answers {sorted(outputs)}, not the manifest's {spec.name!r}"
                )
            expected = [len(batch) if d is None else d for d in spec.shape]
            if list(got.shape) != expected:
                raise ArtifactCorruptError(
                    f"{where}: {kind} output {spec.name!r} is {list(got.shape)}, the manifest says {list(spec.shape)}"
                )
    primary = primary_artifact(manifest.artifacts)
    tolerance = float(manifest.agreement.get("tolerance", agreement.TOLERANCE))
    others = {k: v for k, v in results.items() if k != primary}
    agreed = agreement.compare(
        results[primary],
        others,
        reference_name=primary,
        inputs=f"{len(batch)} images",
        classification=manifest.task == "classification",
        tolerance=tolerance,
    )
    if agreed.problems:
        raise ArtifactCorruptError(f"{where}: the engines disagree: " + "; ".join(agreed.problems))
    return Verified(manifest.name, manifest.version, manifest.digest, agreed.record["max_abs_diff"])


def _targets(repo: LocalRepository | S3Repository, ref: ModelRef | None) -> list[tuple[str, str]]:
    if ref is None:
        return [(name, v) for name in repo.models() for v in repo.versions(name)]
    if ref.version is None:
        repo.resolve(ref.name)  # ModelNotFoundError when it has no version
        return [(ref.name, v) for v in repo.versions(ref.name)]
    return [(ref.name, repo.resolve(ref.name, ref.version))]


def verify_repository(repo: LocalRepository | S3Repository, ref: ModelRef | None, log: Log = print) -> list[Verified]:
    """Verify every version (or one model's, or one); an s3:// version is downloaded to a temp folder first."""
    done: list[Verified] = []
    for name, version in _targets(repo, ref):
        if isinstance(repo, LocalRepository):
            result = verify_folder_fully(repo.folder(name, version))
        else:
            with tempfile.TemporaryDirectory(prefix="vision-model-verify-") as tmp:
                result = verify_folder_fully(repo.download(name, version, Path(tmp) / "v"))
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.max_abs_diff.items()) or "one artifact"
        log(f"ok  {name}/{version}  {result.digest[:19]}  engines agree ({diffs})")
        done.append(result)
    return done
