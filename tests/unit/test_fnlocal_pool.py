"""FunctionPool with stand-in containers: hot reuse, and dead idle containers are stopped, not leaked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fnlocal.config import Function
from fnlocal.pool import FunctionPool

FN = Function(app="a", name="f", fn_id="ID", directory=Path("/nowhere"), handler="handler", memory_mb=128,
              timeout_s=5, idle_timeout_s=30, config={})


class FakeContainer:
    def __init__(self, n: int) -> None:
        self.n, self.pid = n, 1000 + n
        self.dead = False
        self.closed = 0
        self.busy = False
        self.kill_reason: str | None = None
        self.call_id: str | None = None
        self.call_deadline: float | None = None
        self.last_used = 0.0

    @property
    def alive(self) -> bool:
        return not self.dead

    def close(self) -> None:
        self.closed += 1


def _pool(closer: Any = None) -> tuple[FunctionPool, list[FakeContainer]]:
    made: list[FakeContainer] = []

    def factory(fn: Function) -> Any:
        made.append(FakeContainer(len(made)))
        return made[-1]

    return FunctionPool(FN, factory, max_containers=2, queue_timeout_s=0.1, closer=closer), made


def test_idle_container_is_reused_hot() -> None:
    pool, made = _pool()
    first, cold = pool.acquire()
    pool.release(first)
    again, cold_again = pool.acquire()
    assert (cold, cold_again) == (True, False) and again is first and len(made) == 1


def test_dead_idle_container_is_closed_and_replaced() -> None:
    pool, made = _pool()  # default closer: Container.close → the fake's close
    first, _ = pool.acquire()
    pool.release(first)
    made[0].dead = True  # e.g. the process died while idle, before the monitor noticed
    second, cold = pool.acquire()
    assert cold is True and second is made[1]
    assert made[0].closed == 1 and pool.snapshot() == [second]


def test_dead_idle_container_goes_to_the_given_closer() -> None:
    closed: list[Any] = []
    pool, made = _pool(closer=closed.append)
    first, _ = pool.acquire()
    pool.release(first)
    made[0].dead = True
    pool.acquire()
    assert closed == [made[0]] and made[0].closed == 0
