"""Do a version's artifacts compute the same thing? Compare each engine's outputs with a reference.

A value agrees when ``|artifact - reference| <= TOLERANCE * max(1, |reference|)``: absolute for
probabilities and other values up to 1, relative for larger regression outputs. Classifiers must
also give the same top-1 class for every input. The record goes into the manifest's ``agreement``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.errors import ArtifactLoadError

from modelbuild.runners import ENGINE_OF, Runner, open_runner

__all__ = ["TOLERANCE", "Agreement", "compare", "run_artifacts"]

TOLERANCE = 1e-4
Outputs = dict[str, npt.NDArray[Any]]


class Agreement:
    """The comparison's record and what did not agree."""

    def __init__(self, record: dict[str, Any], problems: list[str]) -> None:
        self.record = record
        self.problems = problems


def run_artifacts(
    folder: Path, artifacts: Mapping[str, Any], batch: npt.NDArray[Any], threads: int = 2
) -> dict[str, Outputs]:
    """Load each artifact (``kind -> Artifact``) in its engine and run the batch; ArtifactLoadError if one fails."""
    results: dict[str, Outputs] = {}
    for kind, artifact in artifacts.items():
        path = folder / artifact.path
        runner: Runner = open_runner(kind, path, signature=artifact.signature or "serving_default", threads=threads)
        try:
            results[kind] = runner(batch)
        except ArtifactLoadError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ArtifactLoadError(
                f"{artifact.path} loads in {ENGINE_OF[kind]} but does not run on a [N,H,W,3] batch: {first[:300]}"
            ) from exc
    return results


def compare(
    reference: Outputs,
    results: Mapping[str, Outputs],
    *,
    reference_name: str,
    inputs: str,
    classification: bool,
    tolerance: float = TOLERANCE,
) -> Agreement:
    """Compare every artifact's outputs with the reference's; the record names the largest differences."""
    problems: list[str] = []
    max_abs: dict[str, float] = {}
    top1 = True
    for kind, outputs in results.items():
        worst = 0.0
        for name, ref in reference.items():
            got = outputs.get(name)
            if got is None:
                problems.append(f"{kind} has no output {name!r} (it has {sorted(outputs)})")
                continue
            ref64, got64 = np.asarray(ref, np.float64), np.asarray(got, np.float64)
            if ref64.shape != got64.shape:
                problems.append(f"{kind} output {name!r} has shape {list(got64.shape)}, not {list(ref64.shape)}")
                continue
            diff = np.abs(got64 - ref64)
            worst = max(worst, float(diff.max(initial=0.0)))
            if not np.all(diff <= tolerance * np.maximum(1.0, np.abs(ref64))):
                problems.append(f"{kind} output {name!r} differs from {reference_name} by up to {diff.max():.2e}")
            if classification and not np.array_equal(ref64.argmax(axis=-1), got64.argmax(axis=-1)):
                top1 = False
                problems.append(f"{kind} gives another top-1 class than {reference_name} on some input")
        max_abs[kind] = float(f"{worst:.3g}")
    record: dict[str, Any] = {
        "reference": reference_name,
        "inputs": inputs,
        "tolerance": tolerance,
        "max_abs_diff": max_abs,
    }
    if classification:
        record["top1_agree"] = top1
    record["agree"] = not problems
    return Agreement(record, problems)
