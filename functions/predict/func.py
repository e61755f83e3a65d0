"""Fn entry point of predict: a thin adapter from the fdk to ``predict_core.service``.

The fdk imports this module on the first call (lazily), so the imports below count towards that
call; the model itself is loaded by ``predict_core.model.get_model`` once per hot container.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fnvision_common.fnedge import is_gateway, request_headers, respond
from fnvision_common.jsonlog import call_id_var, configure
from fnvision_common.s3client import build_client
from predict_core import service
from predict_core.errors import ConfigError, PredictError
from predict_core.memory import release_after_call
from predict_core.model import get_model
from predict_core.results import ResultStore, S3ResultStore
from predict_core.settings import Settings

MODEL_DIR = Path(__file__).resolve().parent / "model"
"""The model bundled in the image (``fn build`` copies this folder to /function)."""

INDEX_WRITERS = 4
log = logging.getLogger("predict")


@functools.cache
def _settings() -> Settings:
    """Parse the config once and configure logging from it (LOG_LEVEL is validated there first).

    A bad config is not cached: every call answers config_error (logged as JSON at INFO) until
    the function's config is fixed.
    """
    try:
        settings = Settings.from_env(os.environ, MODEL_DIR)
    except ConfigError:
        configure("predict", "INFO")
        raise
    configure("predict", settings.log_level)
    return settings


@functools.cache
def _s3() -> Any:
    client, cost = build_client(_settings().s3)
    log.info("s3 client built", extra={"s3_client": cost})
    return client


@functools.cache
def _deps() -> service.Deps:
    """Built inside the first call (the cold one, which also loads the model).

    When storage is configured (S3 endpoint or keys, or an s3:// model), the S3 client is built here
    too, so that the cold call pays boto3's import and the client, not the first call that records a
    result in a hot container. Without storage configuration boto3 is never imported unless a call
    records (the client is then built by that call, and logged).
    """
    settings = _settings()
    if settings.s3.configured or settings.model_uri.startswith("s3://"):
        _s3()

    def store() -> ResultStore:
        return S3ResultStore(_s3())

    def index() -> S3ResultStore | None:
        return S3ResultStore(_s3()) if settings.results_index else None

    return service.Deps(
        settings, get_model=lambda: get_model(settings, _s3), get_store=store, get_index=index,
        index_run=_index_pool().map,
    )


@functools.cache
def _index_pool() -> ThreadPoolExecutor:
    """Writes one record's index entries in parallel (about ten small PUTs); its threads start on
    first use and stay few (Fn's pids limit is 50 per container)."""
    return ThreadPoolExecutor(max_workers=INDEX_WRITERS, thread_name_prefix="index")


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    """Classify the images in the request body (see README.md for formats and errors)."""
    call_id = ctx.CallID()
    call_id_var.set(call_id)
    headers = request_headers(ctx)
    body = data.getvalue() if data is not None else b""
    try:
        reply = service.predict(body, headers, call_id, _deps())
    except PredictError as exc:  # bad configuration: reported like any other error
        log.error("call failed", extra={"code": exc.code, "error": exc.message})
        reply = service.error_reply(exc)
    release_after_call(len(body))  # a big body: its memory goes back to the system after the response
    return respond(ctx, reply, is_gateway(headers))
