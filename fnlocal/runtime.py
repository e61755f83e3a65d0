"""The agent: runs calls on hot containers and maps every outcome to Fn's statuses and bodies."""

from __future__ import annotations

import http.client
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fnlocal import protocol
from fnlocal.config import MAX_CONTAINERS_ANNOTATION, App, Function
from fnlocal.container import Container, LogSink, python_path
from fnlocal.deps import Deps, DepsError
from fnlocal.pool import FunctionPool
from fnlocal.protocol import FnError, Headers

URL_PLACEHOLDER = "${FNLOCAL_URL}"
"""Config values may contain this; it becomes the server's base URL when a container starts."""
_MONITOR_TICK_S = 0.05
_ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass
class CallResult:
    """What the agent answers for one call (before any trigger rewrite)."""

    status: int
    headers: Headers
    body: bytes
    call_id: str
    cold: bool | None = None
    pid: int | None = None


@dataclass
class CallRecord:
    """One line of the status endpoint's recent calls."""

    call_id: str
    app: str
    function: str
    status: int
    cold: bool | None
    pid: int | None
    duration_ms: float
    detached: bool
    error: str | None
    at: float


class Runtime:
    """Pools of containers for one app, plus a monitor thread for timeouts, memory and idle eviction."""

    def __init__(self, app: App, *, max_containers: int = 4, queue_timeout_s: float = 10.0,
                 start_timeout_s: float = 5.0, log: LogSink | None = None,
                 fdk_command: list[str] | None = None, deps: Deps) -> None:
        self.app = app
        self.deps = deps
        self.url = ""
        self.log = log or LogSink()
        self._start_timeout_s = start_timeout_s
        self._fdk_command = fdk_command
        self._root = Path(tempfile.mkdtemp(prefix="fnl-", dir="/tmp" if os.path.isdir("/tmp") else None))
        # Stopping a container takes up to its grace period: done by the reaper thread, never on the
        # monitor's path (timeouts and memory limits keep being enforced every tick).
        self._to_close: queue.SimpleQueue[Container | None] = queue.SimpleQueue()
        self.pools: dict[str, FunctionPool] = {}
        for fn in app.functions.values():
            limit = int(fn.annotations.get(MAX_CONTAINERS_ANNOTATION, max_containers))
            self.pools[fn.fn_id] = FunctionPool(fn, self._start_container, limit, queue_timeout_s,
                                                closer=self._to_close.put)
        self.recent: deque[CallRecord] = deque(maxlen=100)
        self._stop = threading.Event()
        self._detached: set[threading.Thread] = set()
        self._reaper = threading.Thread(target=self._reap, name="fnlocal-reaper", daemon=True)
        self._reaper.start()
        self._monitor = threading.Thread(target=self._watch, name="fnlocal-monitor", daemon=True)
        self._monitor.start()

    # -- lookups -------------------------------------------------------------------------------
    def find(self, app: str, name: str) -> Function:
        """Function by app and name, or Fn's 404."""
        if app != self.app.name:
            raise FnError(404, protocol.MSG_APP_NOT_FOUND)
        fn = self.app.functions.get(name)
        if fn is None:
            raise FnError(404, protocol.MSG_FN_NOT_FOUND)
        return fn

    def find_id(self, fn_id: str) -> Function:
        """Function by id, or Fn's 404."""
        pool = self.pools.get(fn_id)
        if pool is None:
            raise FnError(404, protocol.MSG_FN_NOT_FOUND)
        return pool.fn

    def find_trigger(self, app: str, source: str) -> Function:
        """Function behind an HTTP trigger source (`/x`), or Fn's 404."""
        if app != self.app.name:
            raise FnError(404, protocol.MSG_APP_NOT_FOUND)
        found = self.app.trigger(source)
        if found is None or found[1].type != "http":
            raise FnError(404, protocol.MSG_TRIGGER_NOT_FOUND)
        return found[0]

    # -- containers ----------------------------------------------------------------------------
    def container_env(self, fn: Function) -> dict[str, str]:
        """The container's environment: config (app < fn < overrides) and the FN_* variables."""
        env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}
        env.update({k: v.replace(URL_PLACEHOLDER, self.url) for k, v in fn.config.items()})
        env.update({
            "FN_FORMAT": "http-stream", "FN_APP_ID": self.app.app_id, "FN_FN_ID": fn.fn_id,
            "FN_APP_NAME": fn.app, "FN_FN_NAME": fn.name, "FN_MEMORY": str(fn.memory_mb), "FN_TYPE": "sync",
            "PYTHONPATH": python_path(fn.directory, self.deps.paths(fn)),
            "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        })
        return env

    def _start_container(self, fn: Function) -> Container:
        try:
            env = self.container_env(fn)  # may reinstall the deps if the cache was wiped: not timed
            container = Container(fn, env, self._root, self.log, self._fdk_command, self._start_timeout_s)
        except (OSError, DepsError) as exc:  # e.g. Popen failed: Fn's init failure, with the cause logged
            self.log.write("fnlocal", f"cannot start {fn.app}/{fn.name}: {exc}")
            raise FnError(502, protocol.MSG_INIT_FAIL) from exc
        self.log.write("fnlocal", f"started {fn.app}/{fn.name} pid={container.pid} "
                                  f"in {container.start_ms:.0f} ms")
        return container

    # -- calls ---------------------------------------------------------------------------------
    def call(self, fn: Function, headers: Headers, body: bytes, call_id: str | None = None,
             detached: bool = False) -> CallResult:
        """Run one call to completion and return the agent's answer (never raises FnError)."""
        call_id = call_id or protocol.new_call_id()
        pool = self.pools[fn.fn_id]
        started = time.monotonic()
        container: Container | None = None
        cold: bool | None = None
        error: str | None = None
        try:
            container, cold = pool.acquire()
            result = self._dispatch(container, headers, body, call_id)
        except FnError as exc:
            error = exc.message
            result = CallResult(exc.status, [("Content-Type", protocol.ERROR_CONTENT_TYPE), *exc.headers],
                                exc.body(), call_id)
        finally:
            if container is not None:
                pool.release(container)
        result.cold, result.pid = cold, container.pid if container else None
        result.headers.append(("Fn-Call-Id", call_id))
        if cold is not None:
            result.headers += [(protocol.COLD_HEADER, str(cold).lower()),
                               (protocol.CONTAINER_HEADER, str(result.pid))]
        record = CallRecord(call_id, fn.app, fn.name, result.status, cold, result.pid,
                            round((time.monotonic() - started) * 1000, 2), detached, error, time.time())
        self.recent.append(record)
        suffix = f" error={error!r}" if error else ""
        self.log.write("fnlocal", f"call={call_id} {fn.app}/{fn.name} status={result.status} cold={cold} "
                                  f"pid={result.pid} ms={record.duration_ms}{suffix}")
        return result

    def call_detached(self, fn: Function, headers: Headers, body: bytes) -> str:
        """Start a call in the background and return its call id at once."""
        call_id = protocol.new_call_id()
        thread = threading.Thread(target=self._run_detached, args=(fn, headers, body, call_id),
                                  name=f"fnlocal-detached-{call_id}", daemon=True)
        self._detached.add(thread)
        thread.start()
        return call_id

    def _run_detached(self, fn: Function, headers: Headers, body: bytes, call_id: str) -> None:
        try:
            self.call(fn, headers, body, call_id, detached=True)
        finally:
            self._detached.discard(threading.current_thread())

    def _dispatch(self, container: Container, headers: Headers, body: bytes, call_id: str) -> CallResult:
        fn = container.fn
        container.call_id = call_id
        container.calls += 1
        container.call_deadline = time.monotonic() + fn.timeout_s
        send = protocol.call_headers(headers, call_id, fn.timeout_s)
        try:
            status, out_headers, out_body = container.post_call(send, body, fn.timeout_s)
        except (OSError, http.client.HTTPException) as exc:
            container.kill("crash")
            raise self._killed_error(container) from exc
        if container.kill_reason is not None:
            raise self._killed_error(container)
        error = protocol.map_container_status(status)
        if error is not None:
            if status not in (502, 504):
                container.kill("invalid response")
            raise error
        kept = [(k, v) for k, v in protocol.strip_hop(out_headers) if k != "Fn-Call-Id"]
        return CallResult(200, kept, out_body, call_id)

    @staticmethod
    def _killed_error(container: Container) -> FnError:
        if container.kill_reason == "timeout":
            return FnError(504, protocol.MSG_TIMEOUT)
        if container.kill_reason == "oom":
            return FnError(502, protocol.MSG_OOM)
        return FnError(502, protocol.MSG_RECEIVE)

    # -- monitor -------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(_MONITOR_TICK_S):
            now = time.monotonic()
            for pool in self.pools.values():
                for container in pool.snapshot():
                    deadline = container.call_deadline
                    if container.busy and deadline is not None and now > deadline:
                        container.kill("timeout")
                    elif container.measure() > pool.fn.memory_mb * 1024 * 1024:
                        rss_mb = container.rss_bytes >> 20
                        self.log.write("fnlocal", f"{pool.fn.name} pid={container.pid} over "
                                                  f"{pool.fn.memory_mb} MB (rss {rss_mb} MB)")
                        container.kill("oom")
                for container in pool.evict_idle(now):
                    self.log.write("fnlocal", f"stopping idle {pool.fn.name} pid={container.pid}")
                    self._to_close.put(container)

    def _reap(self) -> None:
        """Stop the containers the monitor evicted (TERM, grace, KILL), off the monitor's thread."""
        while (container := self._to_close.get()) is not None:
            try:
                container.close()
            except Exception as exc:  # noqa: BLE001 - keep reaping the others
                self.log.write("fnlocal", f"stopping pid={container.pid} failed: {exc!r}")

    # -- status and shutdown ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Functions, their containers and the recent calls, as JSON-ready data."""
        now = time.monotonic()
        functions = []
        for pool in self.pools.values():
            fn = pool.fn
            containers = [{
                "pid": c.pid, "state": "busy" if c.busy else "idle", "calls": c.calls,
                "call_id": c.call_id, "idle_s": None if c.busy else round(now - c.last_used, 3),
                "start_ms": round(c.start_ms, 1), "rss_mb": round(c.rss_bytes / 2**20, 1),
            } for c in pool.snapshot()]
            functions.append({
                "app": fn.app, "name": fn.name, "fn_id": fn.fn_id, "memory_mb": fn.memory_mb,
                "timeout_s": fn.timeout_s, "idle_timeout_s": fn.idle_timeout_s,
                "max_containers": pool.max_containers, "triggers": [t.source for t in fn.triggers],
                "invoke_url": f"{self.url}/invoke/{fn.fn_id}", "containers": containers,
                "calls": asdict(pool.stats),
            })
        return {"app": self.app.name, "app_id": self.app.app_id, "functions": functions,
                "recent_calls": [asdict(r) for r in reversed(self.recent)]}

    def close(self) -> None:
        """Stop the monitor and every container; remove the socket directories."""
        self._stop.set()
        self._monitor.join(2.0)
        self._to_close.put(None)  # the reaper finishes what the monitor queued, then ends
        self._reaper.join(10.0)
        while True:  # anything queued after the reaper ended
            try:
                leftover = self._to_close.get_nowait()
            except queue.Empty:
                break
            if leftover is not None:
                leftover.close()
        to_stop = [c for pool in self.pools.values() for c in pool.close()]
        stoppers = [threading.Thread(target=c.close, daemon=True) for c in to_stop]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(5.0)
        for thread in list(self._detached):
            thread.join(5.0)
        shutil.rmtree(self._root, ignore_errors=True)

