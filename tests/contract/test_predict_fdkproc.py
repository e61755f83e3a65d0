"""tests/fdkproc.py runs a function as Fn does, through fnlocal's Container: outside imports fail, and a
failed start is Fn's init failure and leaves nothing behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fnlocal.protocol import MSG_INIT_FAIL, MSG_INIT_TIMEOUT, FnError
from tests.fdkproc import FdkProcess

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

PROBE = """
import importlib, json, os, sys
from fdk import response


def handler(ctx, data=None):
    found = {}
    for name in ("devstack", "modelbuild", "fnlocal", "tests", "numpy"):
        try:
            importlib.import_module(name)
            found[name] = True
        except ImportError:
            found[name] = False
    body = {"imports": found, "cwd": os.getcwd(), "path": sys.path, "no_site": sys.flags.no_site}
    return response.Response(ctx, response_data=json.dumps(body), headers={"Content-Type": "application/json"})
"""


def _function(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "func.py").write_text(source)
    return folder / "func.py"


def test_the_function_sees_only_its_folder_and_packages(tmp_path: Path) -> None:
    func = _function(tmp_path, PROBE)
    with FdkProcess(func) as fn:
        reply = fn.call(b"{}")
    doc = reply.json()
    assert reply.status == 200
    assert doc["imports"] == {"devstack": False, "modelbuild": False, "fnlocal": False, "tests": False, "numpy": True}
    assert doc["no_site"] == 1
    assert not Path(doc["cwd"]).resolve().is_relative_to(REPO)
    assert doc["path"][1] == str(func.parent)  # [0] is '' for -c: the cwd, outside the repository


def test_predict_imports_nothing_from_outside_its_folder(model_dir: Path) -> None:
    with FdkProcess(REPO / "functions" / "predict" / "func.py") as fn:
        reply = fn.call(json.dumps({"instances": [[[[0] * 3] * 224] * 224]}).encode())
    assert reply.status == 200 and len(reply.json()["predictions"]) == 1


def _processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working directory is in `folder` (fnlocal starts the fdk in its socket dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(folder) + "/"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_process_that_exits_at_start_leaves_no_folder(tmp_path: Path) -> None:
    proc = FdkProcess(tmp_path / "missing" / "func.py", start_timeout=10)
    with pytest.raises(FnError) as info:
        proc.start()
    assert (info.value.status, info.value.message) == (502, MSG_INIT_FAIL)  # Fn's "fdk exited" answer
    assert not proc.root.exists()
    assert proc.container is None and not _processes_in(proc.root)


def test_a_start_timeout_kills_the_process_and_leaves_no_folder(tmp_path: Path) -> None:
    func = _function(tmp_path, "def handler(ctx, data=None):\n    return None\n")
    proc = FdkProcess(func, env={"FN_FORMAT": "http-stream"}, start_timeout=0.0)
    with pytest.raises(FnError) as info:
        proc.start()
    assert (info.value.status, info.value.message) == (504, MSG_INIT_TIMEOUT)
    assert not proc.root.exists()
    assert proc.container is None and not _processes_in(proc.root)  # the process group was killed
