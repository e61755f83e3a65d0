"""Fn entry point of results: a thin adapter from the fdk to ``results_core.service``.

Settings, the S3 client and the reader pool are built once per hot container, in the first call.
Every answer goes through ``fnvision_common.fnedge.respond``: HTTP-trigger calls get wire status 200
with the real status in ``Fn-Http-Status``; ``/invoke`` calls follow ``fnstatus.wire_status``.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fnvision_common.fnedge import is_gateway, request_headers, respond
from fnvision_common.jsonlog import call_id_var, configure
from fnvision_common.s3client import build_client
from results_core import service
from results_core.errors import ConfigError, ResultsError
from results_core.settings import Settings
from results_core.store import S3Reader

log = logging.getLogger("results")


@functools.cache
def _deps() -> service.Deps:
    """Settings, the S3 client (built now, at cold start) and the pool that reads a page's documents."""
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError:
        configure("results", "INFO")
        raise
    configure("results", settings.log_level)
    client, cost = build_client(settings.s3)
    log.info("s3 client built", extra={"s3_client": cost})
    reader = S3Reader(client)
    pool = ThreadPoolExecutor(max_workers=settings.readers, thread_name_prefix="read")
    return service.Deps(settings, get_reader=lambda: reader, mapper=pool.map)


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    """List, show, or render results (see README.md and openapi.json)."""
    call_id_var.set(ctx.CallID())
    headers = request_headers(ctx)
    gateway = is_gateway(headers)
    request = service.Request(
        method=(ctx.Method() or "GET") if gateway else "POST",
        url=(ctx.RequestURL() or "/results") if gateway else None,
        headers=headers,
        body=data.getvalue() if data is not None else b"",
    )
    try:
        reply = service.handle(request, _deps())
    except ResultsError as exc:  # bad configuration: answered like any other error
        log.error("call failed", extra={"code": exc.code, "error": exc.message})
        reply = service.error_reply(exc)
    except Exception:  # a bug: answer in our format (500 → 502 on /invoke) instead of the fdk's plain text
        log.exception("unexpected error")
        reply = service.error_reply(ResultsError("unexpected error in results; see the function log"))
    return respond(ctx, reply, gateway)
