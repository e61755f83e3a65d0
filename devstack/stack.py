"""The embedded local stack: SeaweedFS + fnlocal serving the app + an event source.

    upload ─► SeaweedFS ─► filer webhook ─► FilerAdapter ─► /invoke preprocess ─► predict ─► results
                   └──── Watcher (listing + key→ETag snapshot) ──┘

`source="filer"` (default) runs the adapter for low latency AND the watcher as a safety net: weed
does not resend a webhook call that failed, and the adapter's own retries live in memory, so the
watcher (persisted snapshot) picks up anything lost in a crash. The adapter tells the watcher what
it delivered, so the watcher does not send it again, and both share an in-flight ledger
(`triggers.inflight`): an object being delivered by one is never sent by the other at the same time.
`source="watcher"` runs only the watcher.

Used by ``make run`` / ``make serve`` (persistent data in ``.local/``) and by the end-to-end tests
(temporary data, free ports).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from devstack.seaweedfs import SeaweedFS

log = logging.getLogger(__name__)

APP = "vision"
Source = Literal["filer", "watcher", "none"]


@dataclass
class StackOptions:
    """Where the stack keeps its data and which ports it uses."""

    root: Path
    """Repository root: app.yaml and functions/ live here."""
    data_dir: Path
    s3_base_port: int = 8330
    fn_port: int = 8080
    source: Source = "filer"
    input_bucket: str = "images"
    results_bucket: str = "results"
    results_prefix: str = ""
    watch_interval_s: float = 0.5
    function_log: Path | IO[str] | None = None
    """Where container output goes (default: data_dir/functions.log)."""
    extra_config: dict[str, str] = field(default_factory=dict)
    share_in_flight: bool = True
    """Adapter and watcher share an in-flight ledger (off only to measure what it saves: bench)."""


class LocalStack:
    """Start everything in order, stop everything in reverse; a context manager."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.seaweed: SeaweedFS | None = None
        self.fnlocal: Any = None
        self.adapter: Any = None
        self.watcher: Any = None
        self._watcher_thread: Any = None

    def function_config(self, s3_env: dict[str, str]) -> dict[str, str]:
        """Config injected into both functions (wins over app.yaml and func.yaml)."""
        opts = self.options
        return {
            **s3_env,
            "INPUT_BUCKET": opts.input_bucket,
            "RESULTS_BUCKET": opts.results_bucket,
            "RESULTS_PREFIX": opts.results_prefix,
            # PREDICT_URL: fnlocal.yaml's default, fnlocal's own predict trigger.
            **opts.extra_config,
        }

    def start(self) -> LocalStack:
        from fnlocal import FnLocal
        from triggers.invoker import HttpInvoker

        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        (opts.data_dir / "weed-workdir").mkdir(exist_ok=True)  # weed runs there (notification.toml)
        seaweed = SeaweedFS(
            data_dir=opts.data_dir / "seaweedfs",
            base_port=opts.s3_base_port,
            buckets=(opts.input_bucket, opts.results_bucket),
            workdir=opts.data_dir / "weed-workdir",
        )
        try:
            log_target = opts.function_log or opts.data_dir / "functions.log"
            self.fnlocal = FnLocal(
                str(opts.root), port=opts.fn_port, env_overrides=self.function_config(seaweed.env()),
                log=log_target,
            )
            self.fnlocal.start()
            invoker = HttpInvoker(self.fnlocal.invoke_url(APP, "preprocess"))
            if opts.source == "filer":
                self._start_filer_adapter(invoker, seaweed)
            self.seaweed = seaweed.start()
            if self.adapter is not None:
                self.adapter.client = self.seaweed.client()
            if opts.source in {"filer", "watcher"}:
                self._start_watcher(invoker, interval=opts.watch_interval_s if opts.source == "watcher" else 2.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_filer_adapter(self, invoker: Any, seaweed: SeaweedFS) -> None:
        from triggers.filer_adapter import FilerAdapter

        opts = self.options
        self.adapter = FilerAdapter(
            invoker=invoker,
            buckets=[opts.input_bucket],
            results_bucket=opts.results_bucket,
            results_prefix=opts.results_prefix,
        ).start()
        assert seaweed.workdir is not None
        seaweed.workdir.mkdir(parents=True, exist_ok=True)
        self.adapter.write_config(seaweed.workdir)

    def _start_watcher(self, invoker: Any, interval: float) -> None:
        from triggers.inflight import InFlight
        from triggers.watcher import FileSnapshot, Watcher

        opts = self.options
        assert self.seaweed is not None
        self.watcher = Watcher(
            client=self.seaweed.client(),
            bucket=opts.input_bucket,
            invoker=invoker,
            snapshot=FileSnapshot(opts.data_dir / "watcher-snapshot.json"),
            results_bucket=opts.results_bucket,
            results_prefix=opts.results_prefix,
            emit_existing=False,
        )
        if self.adapter is not None:
            self.adapter.on_delivered = self.watcher.mark_delivered
            if opts.share_in_flight:
                self.adapter.in_flight = self.watcher.in_flight = InFlight()
        self._watcher_thread = self.watcher.start(interval=interval)

    def stop(self) -> None:
        """Stop the event source, then the functions, then storage (reverse order)."""
        for step in (self._stop_watcher, self._stop_adapter, self._stop_fnlocal, self._stop_seaweed):
            try:
                step()
            except Exception:  # keep stopping the rest; never leave processes behind
                log.exception("error while stopping the stack")

    def _stop_watcher(self) -> None:
        thread, self._watcher_thread = self._watcher_thread, None
        if thread is not None:
            thread.stop()

    def _stop_adapter(self) -> None:
        adapter, self.adapter = self.adapter, None
        if adapter is not None:
            adapter.stop()

    def _stop_fnlocal(self) -> None:
        fnlocal, self.fnlocal = self.fnlocal, None
        if fnlocal is not None:
            fnlocal.stop()

    def _stop_seaweed(self) -> None:
        seaweed, self.seaweed = self.seaweed, None
        if seaweed is not None:
            seaweed.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
