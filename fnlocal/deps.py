"""Each function's own packages, installed the way `fn build` does and cached between runs.

`fn build` runs `pip3 install --target /python/ -r requirements.txt` and the container gets
`PYTHONPATH=/function:/python` (its generated Dockerfile, `tests/fncli.py`). fnlocal does the same once per distinct
requirements.txt (and Python): `<python> -m pip install --target <cache>/<key>/ -r requirements.txt`,
where `<key>` is the sha256 of the file's bytes and the Python version. The install goes to a temp dir
that is renamed into place, under a per-key lock file, so parallel starts (threads or processes) install
once and a killed install never leaves a half-filled dir behind.

A function folder with a `.pip_cache/` folder is installed offline from it, as the fn CLI's python
builder does (`pip3 install --no-index --find-links /function/.pip_cache ...`): every package must then
be there as a wheel, and a locally built wheel (same name, new content) changes the cache key.

Mode `venv` is the escape hatch: the containers see the dev venv's site-packages instead (faster to
iterate, but an undeclared dependency then imports fine here and fails on Fn).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fnlocal.config import ConfigError, Function

ISOLATED = "isolated"
VENV = "venv"
MODES = (ISOLATED, VENV)
DEPS_DIR_ENV = "FNLOCAL_DEPS_DIR"
"""Environment variable that overrides the default cache dir (`<app dir>/.local/fnlocal/deps`)."""
REQUIREMENTS = "requirements.txt"
PIP_CACHE = ".pip_cache"
"""The fn CLI's offline wheel folder inside a function folder."""
_HASHED_WHEEL_BYTES = 8 << 20
"""Wheels up to this size are hashed into the cache key (locally built ones are small and change
under the same name); bigger ones come from an index, where a file name never changes content."""
META_FILE = "fnlocal-deps.json"
_TMP_PREFIX = ".tmp-"


class DepsError(ConfigError):
    """A function's requirements.txt could not be installed (as `fn build` would fail)."""


def default_cache_dir(app_root: Path) -> Path:
    """`$FNLOCAL_DEPS_DIR` if set, else `<app dir>/.local/fnlocal/deps`."""
    env = os.environ.get(DEPS_DIR_ENV)
    return Path(env).resolve() if env else app_root / ".local" / "fnlocal" / "deps"


def python_tag() -> str:
    """The interpreter the packages are installed for, e.g. `cpython-311 linux-x86_64`."""
    return f"{sys.implementation.cache_tag} {sysconfig.get_platform()}"


def deps_key(requirements: bytes, tag: str | None = None, pip_cache: Path | None = None) -> str:
    """Cache key: sha256 of the requirements.txt bytes, the Python tag and the offline wheels, if any."""
    digest = hashlib.sha256(requirements)
    digest.update(b"\0" + (tag or python_tag()).encode())
    if pip_cache is not None and pip_cache.is_dir():
        for wheel in sorted(p for p in pip_cache.iterdir() if p.is_file()):
            size = wheel.stat().st_size
            content = hashlib.sha256(wheel.read_bytes()).hexdigest() if size <= _HASHED_WHEEL_BYTES else str(size)
            digest.update(f"\0{wheel.name}\0{content}".encode())
    return digest.hexdigest()


def venv_site_paths() -> list[str]:
    """The current environment's site-packages (the `venv` escape hatch)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _pip_summary(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return "\n".join(errors or lines[-10:])


class Deps:
    """Where each function's packages come from; `paths(fn)` is what follows the function dir on PYTHONPATH."""

    def __init__(self, mode: str = ISOLATED, cache_dir: str | Path | None = None, *,
                 app_root: Path | None = None, notify: Callable[[str], None] | None = None,
                 python: str = sys.executable) -> None:
        if mode not in MODES:
            raise ValueError(f"deps mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.cache_dir = Path(cache_dir).resolve() if cache_dir else default_cache_dir(app_root or Path.cwd())
        self.python = python
        self.installs = 0
        """pip runs done by this object (a cached install counts 0)."""
        self._notify = notify or (lambda message: print(f"fnlocal: {message}", file=sys.stderr))
        self._prepared: dict[str, Path] = {}
        self._lock = threading.Lock()

    def paths(self, fn: Function) -> list[str]:
        """PYTHONPATH entries after the function dir; installs first if needed (not inside any start timeout)."""
        if self.mode == VENV:
            return venv_site_paths()
        with self._lock:
            target = self._prepared.get(fn.fn_id)
        if target is None or not target.is_dir():  # not prepared yet, or the cache was wiped meanwhile
            target = self.prepare(fn)
        return [str(target)]

    def prepare(self, fn: Function) -> Path:
        """Install fn's requirements.txt into the cache unless already there; return the dir."""
        if self.mode == VENV:
            return Path(venv_site_paths()[0])
        req = fn.directory / REQUIREMENTS
        content = req.read_bytes() if req.is_file() else None
        key = deps_key(content or b"", pip_cache=fn.directory / PIP_CACHE)
        target = self.cache_dir / key
        if not target.is_dir():
            self._install(fn, req if content is not None else None, key, target)
        with self._lock:
            self._prepared[fn.fn_id] = target
        return target

    def _install(self, fn: Function, req: Path | None, key: str, target: Path) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f"{key}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if we die
            if target.is_dir():
                return  # another thread or process installed it while we waited
            for stale in self.cache_dir.glob(f"{_TMP_PREFIX}{key[:16]}-*"):
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed install of this key
            tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key[:16]}-", dir=self.cache_dir))
            try:
                started = time.monotonic()
                if req is None:
                    self._notify(f"{fn.app}/{fn.name} has no {REQUIREMENTS}: its containers get no packages "
                                 "(not even the fdk), as with fn build")
                else:
                    self._notify(f"installing requirements for {fn.app}/{fn.name} (first time only)…")
                    self._pip(fn, req, tmp)
                elapsed = time.monotonic() - started
                meta = {"requirements": req.read_text() if req else None, "python": python_tag(),
                        "function": f"{fn.app}/{fn.name}", "install_s": round(elapsed, 2), "at": time.time()}
                (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
                tmp.chmod(0o755)  # mkdtemp made it 0700; fn build does `chmod -R o+r /python`
                os.rename(tmp, target)  # atomic: the dir is complete or absent
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if req is not None:
                self._notify(f"installed requirements for {fn.app}/{fn.name} in {elapsed:.1f} s -> {target}")

    def _pip(self, fn: Function, req: Path, tmp: Path) -> None:
        command = [self.python, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
                   "--target", str(tmp), "-r", str(req)]
        offline = fn.directory / PIP_CACHE
        if offline.is_dir():  # as the fn CLI: offline, from the function's own wheels only
            command += ["--no-index", "--find-links", str(offline)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_TARGET")}
        try:
            done = subprocess.run(command, cwd=fn.directory, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, check=False)
        except OSError as exc:
            raise DepsError(f"{fn.app}/{fn.name}: cannot run pip ({exc})") from exc
        self.installs += 1
        if done.returncode != 0:
            summary = _pip_summary(done.stdout + done.stderr)
            raise DepsError(f"{fn.app}/{fn.name}: pip install -r {req} failed "
                            f"(exit {done.returncode}):\n{summary}")
