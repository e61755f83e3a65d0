"""Run the real ``vision-model`` console script, and run a version's artifacts as the checks do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from fnvision_common.manifest import Manifest

VISION_MODEL = Path(sys.executable).with_name("vision-model")


def vision_model(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``vision-model ARGS`` (the script pip installed from pyproject's [project.scripts])."""
    assert VISION_MODEL.is_file(), f"{VISION_MODEL} missing: run `make venv`"
    return subprocess.run(
        [str(VISION_MODEL), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )  # fmt: skip


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed run: exit status 2 and exactly one ``vision-model: error:`` line on stderr."""
    assert run.returncode == 2, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    errors = [line for line in run.stderr.splitlines() if line.startswith("vision-model: error:")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return errors[0]


def run_every_artifact(folder: Path, batch: np.ndarray) -> dict[str, dict[str, Any]]:
    """Each artifact of a version folder run in its own engine (LiteRT, TensorFlow, ONNX Runtime)."""
    from modelbuild.agreement import run_artifacts

    return run_artifacts(folder, Manifest.read(folder).artifacts, batch)
