"""Keep a function process's threads well under Fn's pid limit (50 per container).

Part of ``fnvision-common`` (``common/``); each function's core package
``__init__.py`` calls ``bound_native_pools()`` before anything imports numpy.

Fn's docker driver starts every function container with a pids limit of 50, and each thread of the
fdk process counts (docker-init is one more). numpy's OpenBLAS starts one worker per core when it is
imported: 63 threads on a 64-core host, already over the limit, and the threads it cannot start are
lost silently. Nothing in these functions uses BLAS or OpenMP (LiteRT has its own pool, sized by
predict's MODEL_NUM_THREADS), so those pools are pinned to one thread whatever the environment says.
Importing either core package therefore pins them in the importing process too (tests, benchmarks),
and in the processes it starts afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

NATIVE_POOLS = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
"""Environment variables read by BLAS/OpenMP libraries when they load (before numpy's import)."""


def bound_native_pools() -> None:
    """Pin every BLAS/OpenMP pool to one thread (takes effect for libraries loaded afterwards)."""
    for name in NATIVE_POOLS:
        os.environ[name] = "1"


def thread_count() -> int:
    """Threads of this process now (each one is a pid for the container's pids limit)."""
    return len(os.listdir("/proc/self/task"))


def thread_ids() -> set[int]:
    """Ids of this process's threads now: what a pool started is the difference of two snapshots
    (a count would be thrown off by threads that end meanwhile)."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def _cgroup_dirs(proc_cgroup: str, root: Path) -> list[Path]:
    """Candidate folders of this process's pids cgroup: cgroup v2 (``0::/path``) or v1 (``N:pids:/path``).

    In a container with its own cgroup namespace the path is ``/`` and the folder is the mount root;
    without one (cgroup v1 docker) the host path is not mounted inside, so the root is tried as well.
    """
    found: list[Path] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base = root
        elif "pids" in controllers.split(","):
            base = root / "pids"
        else:
            continue
        found += [base / path.lstrip("/"), base]
    return found


def pids_limit(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> tuple[int, int] | None:
    """(limit, in use) of this process's pids cgroup; None when unlimited or not readable."""
    try:
        dirs = _cgroup_dirs(proc_cgroup.read_text(), root)
    except OSError:
        return None
    for folder in dirs:
        try:
            limit = (folder / "pids.max").read_text().strip()
            current = int((folder / "pids.current").read_text().strip())
        except (OSError, ValueError):
            continue
        return None if limit == "max" else (int(limit), current)
    return None
