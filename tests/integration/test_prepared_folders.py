"""Each function folder, prepared by `make wheels`, is all `fn build` gets: run the app from copies of
those folders alone (cwd elsewhere, nothing else of the repository next to them), dependencies
installed offline from each folder's own `.pip_cache/` as the fn CLI's python builder does."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from fnlocal import FnLocal
from tests.data import preprocess_images as gen
from tests.integration.fnlocal_helpers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_app_runs_from_its_prepared_function_folders_alone(model_dir: Path, tmp_path: Path) -> None:
    for name in ("predict", "preprocess", "results"):
        if not (REPO / "functions" / name / ".pip_cache").is_dir():
            pytest.fail("functions/*/.pip_cache missing: run `make wheels` (make test does)")
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(REPO / "app.yaml", app / "app.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "functions", app / "functions", ignore=ignore)
    deps = tmp_path / "deps"
    config = {"PREDICT_URL": "${FNLOCAL_URL}/t/vision/predict"}
    with FnLocal(str(app), port=0, deps_dir=deps, env_overrides=config) as fl:
        reply = httpx.post(fl.trigger_url("vision", "/classify"), timeout=120,
                           files={"image": ("cat.jpg", gen.encode(gen.chelsea(), "JPEG", quality=90), "image/jpeg")})
    assert reply.status_code == 200, reply.text
    (item,) = reply.json()["predictions"]
    assert item["top_k"][0]["index"] in {281, 282, 285}
    installed = {p.name for d in deps.iterdir() if d.is_dir() for p in d.iterdir()}
    assert "fnvision_common" in installed, "the shared package came from the folders' own wheels"
    assert not (app / "common").exists() and not (app / "triggers").exists()
