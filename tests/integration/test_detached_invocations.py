"""Detached invocations through fnlocal as backfill's invoker sends them, in both of Fn's behaviours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fnlocal import FnLocal
from tests.integration.fnlocal_helpers import wait_for
from triggers.invoker import HttpInvoker

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_fnlocal"]  # fixtures: fl, fnlocal_factory, http


def _record(fl: FnLocal, call_id: str) -> dict[str, Any] | None:
    return next((c for c in fl.status()["recent_calls"] if c["call_id"] == call_id), None)


def test_accept_mode_acknowledges_with_202_before_the_function_ran(fnlocal_factory: Callable[..., FnLocal]) -> None:
    fl = fnlocal_factory()  # detached="accept": OCI Functions' behaviour
    result = HttpInvoker(fl.invoke_url("demo", "sleeper")).invoke(b"1.0", "text/plain", detached=True)
    assert (result.status, result.body, result.ok) == (202, b"", True)
    assert _record(fl, result.call_id) is None  # still running
    assert wait_for(lambda: _record(fl, result.call_id))["status"] == 200


def test_wait_mode_acknowledges_with_an_empty_200_after_the_function_ran(
        fnlocal_factory: Callable[..., FnLocal]) -> None:
    fl = fnlocal_factory(detached="wait")  # a self-hosted Fn server's behaviour (fnlocal/README.md)
    invoker = HttpInvoker(fl.invoke_url("demo", "sleeper"), max_attempts=1)
    result = invoker.invoke(b"0.3", "text/plain", detached=True)
    assert (result.status, result.body, result.ok) == (200, b"", True) and result.elapsed_s >= 0.3
    record = _record(fl, result.call_id)
    assert record is not None and record["status"] == 200 and record["detached"] is True
