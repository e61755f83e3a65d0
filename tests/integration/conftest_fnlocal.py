"""Fixtures for fnlocal's integration tests, loaded with pytest_plugins.

`fnlocal_factory(**kwargs)` starts an FnLocal on the fixture app `tests/fixtures/apps/demo` on a free
port and stops it after the test; `fl` is one with defaults; `http` is an httpx client. Function deps
are installed in the repo's `.local/fnlocal/deps` (git-ignored), kept between runs: the first run pays
pip once per distinct requirements.txt, later runs none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fnlocal import FnLocal
from tests.integration.fnlocal_helpers import DEMO_APP, DEPS_DIR


@pytest.fixture
def fnlocal_factory() -> Iterator[Callable[..., FnLocal]]:
    started: list[FnLocal] = []

    def make(**kwargs: Any) -> FnLocal:
        kwargs.setdefault("deps_dir", DEPS_DIR)  # one cache for every run: pip runs once per requirements
        fl = FnLocal(kwargs.pop("app_dir", DEMO_APP), port=0, **kwargs).start()
        started.append(fl)
        return fl

    yield make
    for fl in started:
        fl.stop()


@pytest.fixture
def fl(fnlocal_factory: Callable[..., FnLocal]) -> FnLocal:
    return fnlocal_factory()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client
