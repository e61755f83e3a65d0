"""fnlocal.deps without pip: cache keys, the cache dir, modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnlocal.deps import DEPS_DIR_ENV, Deps, _pip_summary, default_cache_dir, deps_key, python_tag


def test_key_depends_on_requirements_and_python() -> None:
    key = deps_key(b"fdk==0.1.128\n")
    assert len(key) == 64 and key == deps_key(b"fdk==0.1.128\n", python_tag())
    assert key != deps_key(b"fdk==0.1.127\n")
    assert key != deps_key(b"fdk==0.1.128\n", "cpython-312 linux-x86_64")


def test_cache_dir_default_env_and_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEPS_DIR_ENV, raising=False)
    assert default_cache_dir(tmp_path) == tmp_path / ".local" / "fnlocal" / "deps"
    assert Deps(app_root=tmp_path).cache_dir == tmp_path / ".local" / "fnlocal" / "deps"
    monkeypatch.setenv(DEPS_DIR_ENV, str(tmp_path / "env"))
    assert Deps(app_root=tmp_path).cache_dir == tmp_path / "env"
    assert Deps(cache_dir=tmp_path / "kw", app_root=tmp_path).cache_dir == tmp_path / "kw"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="isolated"):
        Deps("docker")


def test_pip_summary_keeps_the_errors() -> None:
    out = "WARNING: Location 'x' is ignored\nERROR: Could not find a version\nERROR: No matching distribution\n"
    assert _pip_summary(out) == "ERROR: Could not find a version\nERROR: No matching distribution"
    assert _pip_summary("a\nb\n") == "a\nb"
