"""Fn entry point of preprocess: a thin adapter over ``preprocess_core.service``.

Status handling (docs/contracts.md §6): the body always carries the result or
``{"error": {"code", "message"}}``; HTTP-trigger callers (``Fn-Intent: httprequest``) get the real
status in ``Fn-Http-Status`` with wire status 200; the wire status of ``/invoke`` calls follows
``fnstatus.wire_status`` (client errors 200, server-side failures 502/504). An unexpected exception
is logged with its traceback and answered as 500 ``internal_error`` (502 on ``/invoke``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from fnvision_common import jsonlog
from fnvision_common.fnedge import is_gateway, request_headers, respond
from preprocess_core import service
from preprocess_core.done import ServedModel
from preprocess_core.errors import ConfigError, PreprocessError
from preprocess_core.events import parse_request
from preprocess_core.fetch_s3 import RecordIndex, S3Store
from preprocess_core.fetch_url import UrlFetcher
from preprocess_core.predict_client import PredictClient
from preprocess_core.settings import MANIFEST_FILE, Settings

log = logging.getLogger("preprocess")
_state: dict[str, Any] = {"cold": True, "init_ms": 0.0}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


@lru_cache(maxsize=1)
def _deps() -> service.Deps:
    """Settings and clients, built once per hot container, inside the first call (the cold one).

    The S3 client is built here when storage is configured (``S3Settings.configured``): the cold
    call pays boto3's import and the client (~0.2-0.9 s), not the first storage call of a hot
    container. What it cost is logged (``initialised``) and added to the cold answer's timings.
    """
    started = time.perf_counter()
    try:
        settings = Settings.from_env(os.environ, default_manifest=Path(__file__).with_name(MANIFEST_FILE))
    except ConfigError:
        jsonlog.configure("preprocess", "INFO")  # so that the config error itself is logged as JSON
        raise
    jsonlog.configure("preprocess", settings.log_level)
    store = S3Store(settings.s3, settings.results_bucket, settings.results_prefix)
    init: dict[str, Any] = {"settings_ms": _ms(started)}
    if settings.s3.configured:
        init["s3_client"] = store.connect()
    init["init_ms"] = _ms(started)
    log.info("initialised", extra=init)
    _state["init_ms"] = init["init_ms"]
    return service.Deps(
        settings=settings,
        store=store,
        fetcher=UrlFetcher(
            allow_hosts=settings.url_allow_hosts,
            connect_timeout=settings.url_connect_timeout,
            read_timeout=settings.url_read_timeout,
            total_timeout=settings.url_total_timeout,
            max_redirects=settings.url_max_redirects,
        ),
        predictor=PredictClient(
            settings.predict_url,
            input_name=settings.model.name,
            top_k=settings.top_k,
            timeout=settings.predict_timeout,
            attempts=settings.predict_attempts,
            backoff=settings.predict_backoff,
            max_request_bytes=settings.predict_max_request_bytes,
        ),
        served_model=ServedModel(settings.done_check_seconds),
        index=RecordIndex(store) if settings.results_index else None,
    )


def _respond(ctx: Any, status: int, document: dict[str, Any], gateway: bool) -> Any:
    body = json.dumps(document, ensure_ascii=False, default=str)
    return respond(ctx, status, body, {"Content-Type": "application/json"}, gateway)


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    """Fn handler: any event, request or upload → predictions per image."""
    call_id = ctx.CallID()
    jsonlog.call_id_var.set(call_id)
    headers = request_headers(ctx)
    gateway = is_gateway(headers)
    body = data.getvalue() if data is not None else b""
    try:
        deps = _deps()
        service.check_auth(headers, deps.settings.auth_token, gateway)
        if gateway and not body and (ctx.Method() or "").upper() in ("GET", "HEAD"):
            return _respond(ctx, 200, {"ok": True, "function": "preprocess"}, gateway)  # webhook liveness probes
        request = parse_request(
            body, headers, max_images=deps.settings.max_images, default_bucket=deps.settings.input_bucket
        )
        result = service.run(request, deps, call_id)
        result["cold_start"] = _state["cold"]
        if _state["cold"]:
            result.setdefault("timings", {})["init_ms"] = _state["init_ms"]
        return _respond(ctx, 200, result, gateway)
    except PreprocessError as exc:
        log.warning("request failed", extra={"code": exc.code, "status": int(exc.status), "why": exc.message})
        return _respond(ctx, int(exc.status), {**exc.to_body(), "call_id": call_id}, gateway)
    except Exception as exc:  # a bug: answer in our format (500 → 502 on /invoke) instead of the fdk's
        log.exception("unexpected error", extra={"code": "internal_error"})
        error = {"code": "internal_error", "message": f"unexpected {type(exc).__name__}; see the log of this call"}
        return _respond(ctx, 500, {"error": error, "call_id": call_id}, gateway)
    finally:
        _state["cold"] = False
