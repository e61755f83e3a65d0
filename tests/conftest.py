"""Fixtures shared by every test layer.

`seaweed` is one real SeaweedFS server (S3 over HTTP, credentials on) for the whole session;
tests isolate themselves with `new_bucket`, never by restarting the server.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.seaweedfs import SeaweedFS, find_free_base

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "functions" / "predict" / "model"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real SeaweedFS S3 server on loopback for the whole test session."""
    data = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedFS(data_dir=data, base_port=find_free_base(), buckets=("images", "results"))
    with server:
        yield server


@pytest.fixture(scope="session")
def s3(seaweed: SeaweedFS) -> Any:
    """A boto3 client for the session's SeaweedFS."""
    return seaweed.client()


_counter = itertools.count()


@pytest.fixture
def new_bucket(s3: Any) -> Callable[[str], str]:
    """Create a fresh, uniquely named bucket: `new_bucket("images")` -> "images-3-1a2b3c"."""

    def make(stem: str = "b") -> str:
        name = f"{stem}-{next(_counter)}-{uuid.uuid4().hex[:6]}"
        s3.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The built model (make model); tests that need it skip with a clear reason if it is missing."""
    if not (MODEL_DIR / "manifest.json").exists():
        pytest.skip("model not built: run `make model`")
    return MODEL_DIR


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real cloud account by accident."""
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("FN_API_URL", raising=False)  # `fnlocal invoke` would post to a developer's server
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def _stale_wheels() -> list[str]:
    """Function folders whose .pip_cache lacks the current fnvision-common (its wheel is built from common/)."""
    import zipfile

    source = REPO / "common" / "fnvision_common"
    stale = []
    for fn_dir in sorted((REPO / "functions").iterdir()):
        wheels = sorted((fn_dir / ".pip_cache").glob("fnvision_common-*.whl"))
        if not wheels:
            stale.append(f"{fn_dir.name} (no .pip_cache/fnvision_common wheel)")
            continue
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for path in source.glob("*.py"):
                try:
                    packed = wheel.read(f"fnvision_common/{path.name}")
                except KeyError:
                    packed = b""
                if packed != path.read_bytes():
                    stale.append(f"{fn_dir.name} ({path.name} changed)")
                    break
    return stale


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that run the functions under fnlocal install them from their .pip_cache: it must be current."""
    if not any(item.get_closest_marker("integration") for item in items):
        return
    stale = _stale_wheels()
    if stale:
        pytest.exit(f"functions' offline wheels are missing or stale: {', '.join(stale)}; run `make wheels` "
                    "(make test does)", returncode=2)
