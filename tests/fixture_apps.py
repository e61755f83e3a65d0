"""The test apps under `tests/fixtures/apps/`, materialised as real Fn app folders at test time.

Their function files are stored as `func.fixture.yaml`, never `func.yaml`: `fn deploy --all` walks the
whole tree under the repository root and deploys every `func.yaml` / `func.yml` / `func.json` it meets
(fnproject/cli `common/walker.go`), so a stored fixture `func.yaml` would be deployed as a function of
the app (issue 10). `fixture_app(name)` copies one app to a temporary folder, outside the walked tree,
with each `func.fixture.yaml` renamed to `func.yaml`; the copy is made once per process and removed
at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

STORED_APPS = Path(__file__).resolve().parent / "fixtures" / "apps"
STORED_FUNC_FILE = "func.fixture.yaml"
FUNC_FILE = "func.yaml"


@functools.cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="fn-vision-fixture-apps-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def materialise(name: str, dest: Path) -> Path:
    """Copy the stored app `name` into `dest/name` with its function files named `func.yaml`."""
    source = STORED_APPS / name
    if not source.is_dir():
        raise FileNotFoundError(f"no fixture app {name!r} in {STORED_APPS}")
    target = dest / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for stored in target.rglob(STORED_FUNC_FILE):
        stored.rename(stored.with_name(FUNC_FILE))
    return target


@functools.cache
def fixture_app(name: str) -> Path:
    """The materialised app folder `name` (e.g. `demo`), shared by every test of this process."""
    return materialise(name, _workdir())
