"""Issue 10 item 5: threads of the real fdk processes stay well under Fn's 50-pid limit, even on a host
with many cores, and a pool that cannot start its threads is an error, not a silent 200.

Many cores are simulated with an LD_PRELOAD shim (built here with the C compiler) that makes
``sysconf(_SC_NPROCESSORS_*)``, ``get_nprocs`` and ``sched_getaffinity`` report 64 CPUs: numpy's
OpenBLAS then starts 63 threads at import unless its pool is bounded. The pid limit is a real pids
cgroup (root and a writable cgroup v1/v2 hierarchy are needed; skipped otherwise), as Fn's docker
driver sets it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fnvision_common.threadpools import NATIVE_POOLS

from tests.fdkproc import FdkProcess

REPO = Path(__file__).resolve().parents[2]
PREDICT = REPO / "functions" / "predict" / "func.py"
PREPROCESS = REPO / "functions" / "preprocess" / "func.py"
pytestmark = pytest.mark.integration

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#define CPUS 64
long sysconf(int name) {
    static long (*real)(int) = 0;
    if (!real) real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
    if (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF) return CPUS;
    return real(name);
}
int get_nprocs(void) { return CPUS; }
int get_nprocs_conf(void) { return CPUS; }
int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *mask) {
    memset(mask, 0, size);
    for (int i = 0; i < CPUS && i < (int)(size * 8); i++) CPU_SET_S(i, size, mask);
    return 0;
}
"""


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise KeyError("Threads")


def _npy(n: int = 1) -> tuple[bytes, dict[str, str]]:
    buf = io.BytesIO()
    np.save(buf, np.zeros((n, 224, 224, 3), np.uint8))
    return buf.getvalue(), {"Content-Type": "application/x-npy"}


@pytest.fixture(scope="module")
def many_cores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a process that believes it runs on 64 cores; checked on a bare numpy import."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the many-core shim")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "manycore.c").write_text(SHIM)
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(folder / "manycore.so"), str(folder / "manycore.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    env = {"LD_PRELOAD": str(folder / "manycore.so")}
    probe = "import os, numpy; print(os.cpu_count(), len(os.listdir('/proc/self/task')))"
    unpinned = {k: v for k, v in os.environ.items() if k not in NATIVE_POOLS}  # predict_core's import pins them
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**unpinned, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "64" and int(out[1]) >= 60, f"the shim does not simulate 64 cores: {out}"  # 63 BLAS workers
    return env


@pytest.mark.parametrize(("threads", "most"), [(None, 4), ("16", 18)])
def test_predict_threads_on_a_64_core_host(
    many_cores: dict[str, str], model_dir: Path, threads: str | None, most: int
) -> None:
    # an environment that asks for big pools: the function pins them anyway
    env = {**many_cores, "OPENBLAS_NUM_THREADS": "64", "OMP_NUM_THREADS": "64"}
    if threads:
        env["MODEL_NUM_THREADS"] = threads
    with FdkProcess(PREDICT, env=env) as fn:
        for n in (1, 5):
            reply = fn.call(*_npy(n))
            assert reply.status == 200, reply.body[:300]
        count = _threads(fn.pid)
        (loaded,) = [r for r in fn.json_logs() if r.get("msg") == "model loaded"]
    # fdk main thread + (MODEL_NUM_THREADS - 1) LiteRT workers; no BLAS/OpenMP pool (63 threads before)
    assert count <= most, f"{count} threads"
    assert loaded["num_threads"] == int(threads or 2) and loaded["process_threads"] <= most
    print(f"predict on 64 simulated cores, MODEL_NUM_THREADS={threads or 'default (2)'}: {count} threads")


def test_preprocess_threads_on_a_64_core_host(many_cores: dict[str, str]) -> None:
    env = {**many_cores, "OPENBLAS_NUM_THREADS": "64", "PREDICT_URL": "http://127.0.0.1:9/unused"}
    with FdkProcess(PREPROCESS, env=env) as fn:
        reply = fn.call(b"not an image", {"Content-Type": "image/jpeg"})
        assert reply.status in (200, 502) and "error" in reply.json()
        assert "openblas" in Path(f"/proc/{fn.pid}/maps").read_text()  # numpy (and its BLAS) is loaded
        count = _threads(fn.pid)
    assert count <= 3, f"{count} threads"
    print(f"preprocess on 64 simulated cores: {count} threads")


def test_model_num_threads_beyond_16_is_a_config_error(model_dir: Path) -> None:
    with FdkProcess(PREDICT, env={"MODEL_NUM_THREADS": "60"}) as fn:
        reply = fn.call(*_npy())
        count = _threads(fn.pid)
    assert reply.status == 502 and reply.json()["error"]["code"] == "config_error"
    assert "MODEL_NUM_THREADS=60 must be between 1 and 16" in reply.json()["error"]["message"]
    assert count <= 2


# -- a pid limit the pool cannot fit ------------------------------------------------------------------


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    """A fresh pids cgroup (v1 or v2) to move a process into; removed afterwards."""
    name = f"fnvision-test-{uuid.uuid4().hex[:8]}"
    candidates = [Path("/sys/fs/cgroup/pids")]
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    if controllers.exists() and "pids" in controllers.read_text().split():
        candidates.append(Path("/sys/fs/cgroup"))
    for root in candidates:
        folder = root / name
        try:
            folder.mkdir()
        except OSError:
            continue
        if (folder / "pids.max").exists():
            break
        folder.rmdir()
    else:
        pytest.skip("no writable pids cgroup here (needs root and a cgroup v1/v2 pids hierarchy)")
    try:
        yield folder
    finally:
        for proc in (folder / "cgroup.procs").read_text().split():  # the process may still be exiting
            (folder.parent / "cgroup.procs").write_text(proc)
        folder.rmdir()


HIDE_LIMIT = """
import importlib.util, sys
sys.path.insert(0, {folder!r})
import predict_core.model
predict_core.model.pids_limit = lambda: None  # a runtime whose pid limit cannot be read beforehand
spec = importlib.util.spec_from_file_location("predict_func", {func!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
handler = module.handler
"""


@pytest.mark.parametrize("limit_visible", [True, False], ids=["refused_before", "detected_after"])
def test_a_pool_the_pid_limit_cannot_hold_is_an_error(
    pids_cgroup: Path, model_dir: Path, tmp_path: Path, limit_visible: bool
) -> None:
    func = PREDICT
    if not limit_visible:
        func = tmp_path / "func.py"
        func.write_text(HIDE_LIMIT.format(folder=str(PREDICT.parent), func=str(PREDICT)))
    with FdkProcess(func, env={"MODEL_NUM_THREADS": "16"}) as fn:
        (pids_cgroup / "pids.max").write_text("12")  # 16 threads cannot fit; Fn's limit is 50
        (pids_cgroup / "cgroup.procs").write_text(str(fn.pid))
        replies = [fn.call(*_npy()) for _ in range(3)]
        assert fn.alive()
        count = _threads(fn.pid)
    for reply in replies:
        assert reply.status == 502, reply.body[:300]
        error = reply.json()["error"]
        assert error["code"] == "config_error" and "MODEL_NUM_THREADS=16" in error["message"]
    if limit_visible:
        assert "pids" in replies[0].json()["error"]["message"] and count == 1  # nothing was started
    else:
        assert "worker threads" in replies[0].json()["error"]["message"]
        assert replies[0].body == replies[2].body  # one attempt: the failure is kept, no second pool
    print(f"{'refused' if limit_visible else 'detected'}: {replies[0].json()['error']['message']} ({count} threads)")
