"""fnvision_common/threadpools.py: native pools pinned, and the container's pids limit read from its cgroup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fnvision_common.threadpools import NATIVE_POOLS, bound_native_pools, pids_limit, thread_count


def _write(root: Path, rel: str, **files: str) -> None:
    folder = root / rel
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)


def _proc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cgroup"
    path.write_text(text)
    return path


def test_cgroup_v2_in_a_namespace(tmp_path: Path) -> None:
    _write(tmp_path / "fs", "", pids_max="50\n", pids_current="7\n")
    assert pids_limit(tmp_path / "fs", _proc(tmp_path, "0::/\n")) == (50, 7)


def test_cgroup_v2_at_a_host_path(tmp_path: Path) -> None:
    _write(tmp_path / "fs", "system.slice/docker-1.scope", pids_max="50", pids_current="3")
    assert pids_limit(tmp_path / "fs", _proc(tmp_path, "0::/system.slice/docker-1.scope\n")) == (50, 3)


def test_cgroup_v1_inside_docker_sees_its_own_cgroup_at_the_root(tmp_path: Path) -> None:
    _write(tmp_path / "fs", "pids", pids_max="50", pids_current="2")
    text = "12:memory:/docker/abc\n8:pids:/docker/abc\n0::/\n"
    assert pids_limit(tmp_path / "fs", _proc(tmp_path, text)) == (50, 2)


@pytest.mark.parametrize("limit", ["max", None])
def test_no_limit(tmp_path: Path, limit: str | None) -> None:
    if limit:
        _write(tmp_path / "fs", "", pids_max=limit, pids_current="2")
    assert pids_limit(tmp_path / "fs", _proc(tmp_path, "0::/\n")) is None
    assert pids_limit(tmp_path / "fs", tmp_path / "missing") is None


def test_pools_are_pinned_whatever_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NATIVE_POOLS:
        monkeypatch.setenv(name, "64")
    bound_native_pools()
    assert {os.environ[name] for name in NATIVE_POOLS} == {"1"}
    assert thread_count() >= 1
