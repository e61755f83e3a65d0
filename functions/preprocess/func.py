"""Fn entry point of preprocess: a thin adapter from the fdk to ``preprocess_core.edge``.

``edge.handle`` makes every answer, errors included (docs/contracts.md §6); ``fnedge.respond`` puts
the real status in ``Fn-Http-Status`` for HTTP-trigger calls (``Fn-Intent: httprequest``) and the
wire status ``fnstatus.wire_status`` says (client errors 200, server-side failures 502/504).
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

from fnvision_common import jsonlog
from fnvision_common.fnedge import is_gateway, request_headers, respond
from preprocess_core import deps, edge
from preprocess_core.errors import ConfigError
from preprocess_core.fetch_s3 import S3Store
from preprocess_core.settings import MANIFEST_FILE, Settings

log = logging.getLogger("preprocess")
_calls = itertools.count()
"""Counts this container's calls: the first one is the cold one (the fdk imports this module in it)."""


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


@functools.cache
def _deps() -> deps.Deps:
    """Settings and clients, built once per hot container, inside the first call (the cold one).

    The S3 client is built here when storage is configured (``S3Settings.configured``): the cold
    call pays boto3's import and the client (~0.2-0.9 s), not the first storage call of a hot
    container. What it cost is logged (``initialised``) and added to the cold answer's timings. A
    bad config is not cached: every call answers config_error (logged as JSON at INFO).
    """
    started = time.perf_counter()
    try:
        settings = Settings.from_env(os.environ, default_manifest=Path(__file__).with_name(MANIFEST_FILE))
    except ConfigError:
        jsonlog.configure("preprocess", "INFO")  # so that the config error itself is logged as JSON
        raise
    jsonlog.configure("preprocess", settings.log_level)
    store = S3Store(settings.s3)
    init: dict[str, Any] = {"settings_ms": _ms(started)}
    if settings.s3.configured:
        init["s3_client"] = store.connect()
    init["init_ms"] = _ms(started)
    log.info("initialised", extra=init)
    return deps.build(settings, store, init_ms=init["init_ms"])


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    """Fn handler: any event, request or upload → predictions per image."""
    call_id = ctx.CallID()
    jsonlog.call_id_var.set(call_id)
    headers = request_headers(ctx)
    body = data.getvalue() if data is not None else b""
    call = edge.Call(ctx.Method() or "", headers, body, call_id, cold=next(_calls) == 0)
    return respond(ctx, edge.handle(call, _deps), is_gateway(headers))
