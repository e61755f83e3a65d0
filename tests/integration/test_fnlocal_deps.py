"""fnlocal's per-function dependencies: each function sees its folder and its own requirements.txt
(installed once like `fn build`, cached), never the dev venv."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fnlocal import FnLocal
from fnlocal.config import load_app
from fnlocal.deps import META_FILE, Deps, DepsError, deps_key
from tests.integration.fnlocal_helpers import DEMO_APP, DEPS_APP, DEPS_DIR, containers, wait_for

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_fnlocal"]  # fixtures: fl, fnlocal_factory, http
FNLOCAL_BIN = Path(sys.executable).parent / "fnlocal"


def _write_app(root: Path, requirements: str | None, func_py: str = "def handler(ctx, data=None):\n    return 'ok'\n",
               name: str = "tiny") -> Path:
    fn_dir = root / "functions" / name
    fn_dir.mkdir(parents=True)
    (root / "app.yaml").write_text("name: tmpapp\n")
    (fn_dir / "func.yaml").write_text(f"schema_version: 20180708\nname: {name}\n"
                                      "entrypoint: /python/bin/fdk /function/func.py handler\n")
    (fn_dir / "func.py").write_text(func_py)
    if requirements is not None:
        (fn_dir / "requirements.txt").write_text(requirements)
    return root


def test_undeclared_dependency_fails_and_declared_one_works(fnlocal_factory, http: httpx.Client) -> None:
    import yaml  # the dev venv has it: with deps="venv" both functions would work

    assert yaml.__file__
    fl = fnlocal_factory(app_dir=DEPS_APP)
    undeclared = http.post(fl.invoke_url("deps", "undeclared"))
    assert undeclared.status_code == 502 and undeclared.json() == {"message": "function failed"}
    declared = http.post(fl.invoke_url("deps", "declared"))
    assert declared.status_code == 200, declared.text
    info = declared.json()
    assert info["dump"] == "a: 1\n"
    for module in ("yaml", "fdk"):  # both from the function's own install, nothing from the venv
        assert Path(info[module]).is_relative_to(DEPS_DIR), info
    assert ".venv" not in info["yaml"]


def test_venv_escape_hatch_sees_the_dev_venv(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(app_dir=DEPS_APP, deps="venv")
    resp = http.post(fl.invoke_url("deps", "undeclared"))
    assert resp.status_code == 200 and "site-packages" in resp.json()["yaml"]


def test_functions_with_the_same_requirements_share_one_cached_install() -> None:
    app = load_app(DEMO_APP)
    deps = Deps(cache_dir=DEPS_DIR)
    dirs = {deps.prepare(fn) for fn in app.functions.values()}
    assert len(dirs) == 1  # every demo function has the same requirements.txt
    (target,) = dirs
    assert target.name == deps_key(b"fdk==0.1.128\n") and (target / "fdk").is_dir()
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_second_start_reuses_the_cache(fnlocal_factory) -> None:
    first = fnlocal_factory()  # installs only if this machine never did
    target = first.deps.prepare(first.app.functions["echo"])
    meta = target / META_FILE
    before = (target.stat().st_ino, meta.stat().st_mtime_ns)
    second = fnlocal_factory()
    assert second.deps.installs == 0
    assert second.deps.prepare(second.app.functions["echo"]) == target
    assert (target.stat().st_ino, meta.stat().st_mtime_ns) == before
    assert json.loads(meta.read_text())["requirements"] == "fdk==0.1.128\n"


def test_parallel_prepares_install_once_and_leave_no_temp_dir(tmp_path: Path) -> None:
    app = load_app(_write_app(tmp_path / "app", "# no packages\n"))
    fn = app.functions["tiny"]
    cache = tmp_path / "cache"
    workers = [Deps(cache_dir=cache, notify=lambda _: None) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    results: list[Path] = []

    def prepare(deps: Deps) -> None:
        barrier.wait()
        results.append(deps.prepare(fn))

    threads = [threading.Thread(target=prepare, args=(d,)) for d in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4 and len(set(results)) == 1
    assert sum(d.installs for d in workers) == 1
    assert sorted(p.name for p in cache.iterdir()) == sorted([results[0].name, results[0].name + ".lock"])


def test_broken_requirements_fail_at_start_with_pip_error(tmp_path: Path) -> None:
    requirements = "fdk==0.1.128\nfnlocal-no-such-package-zz==1.0\n"
    app_dir = _write_app(tmp_path / "app", requirements)
    cache = tmp_path / "cache"
    log = io.StringIO()
    fl = FnLocal(app_dir, deps_dir=cache, log=log)
    with pytest.raises(DepsError) as caught:
        fl.start()
    message = str(caught.value)
    assert "tmpapp/tiny" in message and "fnlocal-no-such-package-zz" in message
    assert "No matching distribution" in message
    assert [p.name for p in cache.iterdir()] == [deps_key(requirements.encode()) + ".lock"]  # no dir, no temp
    assert "installing requirements for tmpapp/tiny (first time only)" in log.getvalue()
    with pytest.raises(RuntimeError):
        fl.url  # noqa: B018 - never started
    # the CLI says it and exits 1 (fnlocal serve does the same)
    done = subprocess.run([str(FNLOCAL_BIN), "invoke", "tmpapp", "tiny", "--app-dir", str(app_dir),
                           "--deps-dir", str(cache)], input=b"", capture_output=True, timeout=120, check=False)
    assert done.returncode == 1 and b"No matching distribution" in done.stderr


def test_function_without_requirements_gets_no_fdk_and_fails_to_initialize(tmp_path: Path,
                                                                          http: httpx.Client) -> None:
    log = io.StringIO()
    with FnLocal(_write_app(tmp_path / "app", None), deps_dir=tmp_path / "cache", log=log) as fl:
        resp = http.post(fl.invoke_url("tmpapp", "tiny"))
        assert resp.status_code == 502 and resp.json()["message"].startswith("Container failed to initialize")
        assert fl.deps.installs == 0
    text = log.getvalue()
    assert "has no requirements.txt" in text and "No module named 'fdk'" in text


class _SlowDeps(Deps):
    """Installs by linking the real cached fdk install, after a delay longer than the start timeout."""

    def _pip(self, fn, req, tmp):  # type: ignore[no-untyped-def]
        time.sleep(1.5)
        real = Deps(cache_dir=DEPS_DIR).prepare(fn)
        for entry in real.iterdir():
            if entry.name != META_FILE:
                os.symlink(entry, tmp / entry.name)
        self.installs += 1


def test_install_time_is_not_in_the_container_start_timeout(tmp_path: Path, http: httpx.Client) -> None:
    fl = FnLocal(DEMO_APP, deps_dir=tmp_path / "cache", start_timeout_s=1.4)
    fl.deps = _SlowDeps(cache_dir=tmp_path / "cache")
    with fl:
        assert fl.deps.installs == 1  # done by start(), before any container
        url = fl.invoke_url("demo", "exiter")
        assert http.post(url, content=b"hi").status_code == 200
        shutil.rmtree(tmp_path / "cache")  # wiped while running: the next cold start reinstalls first
        assert http.post(url, content=b"exit").status_code == 502
        wait_for(lambda: not containers(fl, "exiter"))
        again = http.post(url, content=b"hi")
        assert again.status_code == 200 and again.headers["Fn-Local-Cold"] == "true"
        assert fl.deps.installs == 2
