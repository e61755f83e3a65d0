"""Containers of one function: reuse idle ones, start more up to a limit, queue, evict when idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fnlocal import protocol
from fnlocal.config import Function
from fnlocal.container import Container
from fnlocal.protocol import FnError


@dataclass
class PoolStats:
    """Counters kept per function."""

    cold: int = 0
    hot: int = 0
    busy_rejections: int = 0
    started: int = 0
    evicted: int = 0
    killed: int = 0


class FunctionPool:
    """Hands out containers, one call at a time each, like Fn's hot slots."""

    def __init__(self, fn: Function, factory: Callable[[Function], Container], max_containers: int,
                 queue_timeout_s: float, closer: Callable[[Container], None] | None = None) -> None:
        self.fn = fn
        self._closer = closer or (lambda container: container.close())
        self._factory = factory
        self.max_containers = max_containers
        self.queue_timeout_s = queue_timeout_s
        self.containers: list[Container] = []
        self._idle: list[Container] = []  # most recently used last: hot reuse picks it first
        self._starting = 0
        self._cond = threading.Condition()
        self.stats = PoolStats()
        self._closed = False

    def acquire(self) -> tuple[Container, bool]:
        """Return `(container, cold)`; start one if allowed, else wait; FnError 503 when busy too long."""
        give_up = time.monotonic() + self.queue_timeout_s
        dead: list[Container] = []  # idle containers found dead: stopped (reaped, dir removed) below
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise FnError(503, protocol.MSG_BUSY, [("Retry-After", protocol.BUSY_RETRY_AFTER)])
                    while self._idle:
                        container = self._idle.pop()
                        if container.alive:
                            container.busy = True
                            self.stats.hot += 1
                            return container, False
                        self._forget(container)
                        dead.append(container)
                    if len(self.containers) + self._starting < self.max_containers:
                        self._starting += 1
                        break
                    remaining = give_up - time.monotonic()
                    if remaining <= 0:
                        self.stats.busy_rejections += 1
                        raise FnError(503, protocol.MSG_BUSY, [("Retry-After", protocol.BUSY_RETRY_AFTER)])
                    self._cond.wait(remaining)
        finally:
            for container in dead:
                self._closer(container)
        try:
            container = self._factory(self.fn)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._starting -= 1
            self.stats.started += 1
            self.stats.cold += 1
            container.busy = True
            self.containers.append(container)
            if self._closed:
                self._cond.notify()
        return container, True

    def release(self, container: Container) -> None:
        """Give a container back after a call; a dead or killed one is stopped and forgotten."""
        container.busy = False
        container.call_id = None
        container.call_deadline = None
        container.last_used = time.monotonic()
        with self._cond:
            keep = container.alive and not self._closed
            if keep:
                self._idle.append(container)
            else:
                self._forget(container)
            self._cond.notify()
        if not keep:
            if container.kill_reason not in (None, "stopped"):
                self.stats.killed += 1
            container.close()

    def _forget(self, container: Container) -> None:
        if container in self.containers:
            self.containers.remove(container)
        if container in self._idle:
            self._idle.remove(container)

    def evict_idle(self, now: float) -> list[Container]:
        """Take out idle containers past idle_timeout or dead; the caller stops them."""
        out = []
        with self._cond:
            for container in list(self._idle):
                if not container.alive or now - container.last_used >= self.fn.idle_timeout_s:
                    self._forget(container)
                    out.append(container)
            if out:
                self.stats.evicted += len(out)
                self._cond.notify_all()
        return out

    def snapshot(self) -> list[Container]:
        """The containers now started (busy or idle)."""
        with self._cond:
            return list(self.containers)

    def close(self) -> list[Container]:
        """Refuse new calls and return every container so the caller can stop them."""
        with self._cond:
            self._closed = True
            out = list(self.containers)
            self._idle.clear()
            self._cond.notify_all()
        return out
