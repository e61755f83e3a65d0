"""The locks install exactly themselves (what `fn build` and fnlocal run), and the fdk runs without the
build/test tools it declares."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import httpx
import pytest

from fnlocal import FnLocal, lock
from fnlocal.config import load_app
from fnlocal.deps import Deps, deps_key
from tests.integration.fnlocal_helpers import DEPS_DIR, REPO

pytestmark = pytest.mark.integration

FDK_UNUSED_MODULES = ("Cython", "pytest", "pytest_asyncio", "pbr", "iso8601", "wheel")
"""fdk 0.1.128's declared dependencies, which its runtime code never imports (README.md, "Deploying")."""


def _installed(target: Path) -> dict[str, str]:
    return {lock.canonical_name(d.metadata["Name"]): d.version for d in distributions(path=[str(target)])}


@pytest.mark.parametrize("function", ["predict", "preprocess", "results"])
def test_pip_installs_exactly_the_lock(function: str) -> None:
    # fnlocal's isolated install is `pip install --target <dir> -r requirements.txt`, as in the fn build
    # image (shared cache with the end-to-end tests). Anything pip added would be unpinned (an incomplete
    # lock); anything missing would be a stale lock.
    fn = load_app(REPO).functions[function]
    target = Deps(cache_dir=DEPS_DIR).prepare(fn)
    assert _installed(target) == lock.read_pins(fn.directory / "requirements.txt")


def test_fdk_runs_without_its_declared_build_and_test_tools(tmp_path: Path) -> None:
    # A requirements.txt can't say --no-deps, and fn build's generated Dockerfile installs with deps, so the
    # image carries these tools; this proves a `--no-deps` install of fdk + httptools is enough to serve.
    app = tmp_path / "app"
    fn_dir = app / "functions" / "probe"
    fn_dir.mkdir(parents=True)
    (app / "app.yaml").write_text("name: probe\n")
    (fn_dir / "func.yaml").write_text("schema_version: 20180708\nname: probe\n"
                                      "entrypoint: /python/bin/fdk /function/func.py handler\n")
    (fn_dir / "func.py").write_text(
        "import importlib.util, json\n"
        "def handler(ctx, data=None):\n"
        f"    found = [m for m in {FDK_UNUSED_MODULES!r} "
        "if importlib.util.find_spec(m)]\n"
        "    return json.dumps({'found': found, 'body': data.getvalue().decode()})\n")
    pins = lock.read_pins(REPO / "functions" / "preprocess" / "requirements.txt")
    requirements = "".join(f"{name}=={pins[name]}\n" for name in ("fdk", "httptools"))
    (fn_dir / "requirements.txt").write_text(requirements)
    cache = tmp_path / "deps"
    target = cache / deps_key(requirements.encode())  # fnlocal finds it installed and uses it as is
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    "-r", str(fn_dir / "requirements.txt")], check=True, capture_output=True)
    assert sorted(_installed(target)) == ["fdk", "httptools"]
    with FnLocal(app, deps_dir=cache) as fl:
        resp = httpx.post(fl.invoke_url("probe", "probe"), content=b"hi", timeout=30)
    assert resp.status_code == 200, resp.text
    assert json.loads(resp.content) == {"found": [], "body": "hi"}
