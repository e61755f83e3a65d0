"""Plain helpers for fnlocal's integration tests (import them; fixtures are in conftest_fnlocal.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fnlocal import FnLocal
from tests.fixture_apps import fixture_app

REPO = Path(__file__).resolve().parents[2]
DEMO_APP = fixture_app("demo")
"""The demo fixture app, materialised outside the repository (tests/fixture_apps.py explains why)."""
DEPS_APP = fixture_app("deps")
DEPS_DIR = REPO / ".local" / "fnlocal" / "deps"
"""The deps cache shared by every test run (and `make run`, whose app dir is the repo)."""


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fdk_pids_for(app_dir: Path) -> list[int]:
    """Pids of every running process whose command line mentions this app folder."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        if str(app_dir) in cmd and "fdk" in cmd and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; fail the test after `timeout` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > give_up:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def containers(fl: FnLocal, function: str) -> list[dict[str, Any]]:
    """The status endpoint's containers of one function."""
    for fn in fl.status()["functions"]:
        if fn["name"] == function:
            return list(fn["containers"])
    raise KeyError(function)
