"""The app's real functions under fnlocal, wired to the session's SeaweedFS (preprocess → predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fnlocal import FnLocal

REPO = Path(__file__).resolve().parents[2]


def repo_app(seaweed: Any, model_dir: Path, **config: str) -> FnLocal:
    """An FnLocal (not started: use it as a context manager) serving functions/*; ``config`` wins."""
    overrides = {
        **seaweed.env(),
        "PREDICT_URL": "${FNLOCAL_URL}/invoke/vision/predict",
        "MODEL_MANIFEST": str(model_dir / "manifest.json"),
        "RESULTS_BUCKET": "results",
        "RESULTS_PREFIX": "",
        **config,
    }
    return FnLocal(str(REPO), port=0, env_overrides=overrides)
